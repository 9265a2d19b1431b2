package depsync

import (
	"context"
	"io/fs"
	"sort"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// WithoutFollowing returns o with the follow loop disabled: the test drives
// Sync itself.
func WithoutFollowing(o Options) Options {
	o.testNoFollow = true
	return o
}

// WithAfterBlob returns o with f called after every blob a follower fetches.
func WithAfterBlob(o Options, f func(ctx context.Context)) Options {
	o.testAfterBlob = f
	return o
}

// RootOf computes the root hash of a manifest as a publisher would.
func RootOf(pm *depsyncpb.RevisionManifest) []byte {
	files := make([]File, len(pm.GetFiles()))
	for i, f := range pm.GetFiles() {
		files[i] = File{Path: f.GetPath(), Mode: fs.FileMode(f.GetMode()), Size: int64(f.GetSize())}
		copy(files[i].SHA256[:], f.GetSha256())
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	r := rootHash(files)
	return r[:]
}
