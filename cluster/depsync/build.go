package depsync

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// build is the tree of a revision being made in tmp/. Its directories are
// made first; then a follower fetches blobs straight into their place in
// it (fetch.go), and commit links or copies the other files from the blob
// store, renames the tree into revisions/ and makes it durable. Writing a
// fetched file where it ends up saves a rename per file and keeps the
// creations spread over the tree's directories, as a plain copy does.
type build struct {
	st  *store
	m   *manifest
	dir string
	// done[i] reports that m.files[i] is in the tree. Each fetch worker
	// sets the entries of its own files; commit reads them after the
	// workers are done.
	done      []bool
	committed bool
}

// newBuild makes an empty tree for m in tmp/ with every directory m needs.
func (s *store) newBuild(m *manifest) (*build, error) {
	b := &build{st: s, m: m, done: make([]bool, len(m.files)),
		dir: filepath.Join(s.root, "tmp", "tree-"+m.rev.ID()+"-"+randHex())}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	for _, f := range m.files {
		for d := path.Dir(f.Path); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted) // a parent sorts before its children
	for _, d := range sorted {
		if err := os.Mkdir(filepath.Join(b.dir, filepath.FromSlash(d)), 0o755); err != nil {
			b.abort()
			return nil, err
		}
	}
	return b, nil
}

// path is where file i goes in the tree being built.
func (b *build) path(i int) string {
	return filepath.Join(b.dir, filepath.FromSlash(b.m.files[i].Path))
}

// commit completes the tree from the blob store (all of whose blobs must
// be present), replaces revisions/<id> with it, and makes the store
// durable: once commit returns, the tree, the blobs and the manifest
// survive a crash. It returns the tree's final path.
func (b *build) commit() (string, error) {
	for i, f := range b.m.files {
		if b.done[i] {
			continue
		}
		dst := b.path(i)
		src := b.st.blobPath(f.SHA256)
		if f.Mode == blobMode {
			if err := os.Link(src, dst); err == nil {
				continue
			}
		}
		if err := copyFile(src, dst, f.Mode); err != nil {
			return "", fmt.Errorf("depsync: building %q: %w", f.Path, err)
		}
	}
	final := b.st.treePath(b.m.rev.ID())
	if err := removeAll(final); err != nil {
		return "", err
	}
	if err := os.Rename(b.dir, final); err != nil {
		return "", err
	}
	b.committed = true
	// One flush of the file system for the whole revision instead of an
	// fsync per file: every file, link and directory written so far is on
	// disk before the caller switches current to the tree.
	if err := syncStore(b.st.root, final); err != nil {
		return "", fmt.Errorf("depsync: flushing %s: %w", b.m.rev.ID(), err)
	}
	return final, nil
}

// abort removes the tree unless it was committed.
func (b *build) abort() {
	if !b.committed {
		removeAll(b.dir)
	}
}
