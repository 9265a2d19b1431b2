package depsync_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/internal/depsyncpb"
	"github.com/carbonkit/carbon/role"
)

// evil is a DepSync server that serves whatever the test sets.
type evil struct {
	depsyncpb.UnimplementedDepSyncServer
	mu       sync.Mutex
	info     *depsyncpb.RevisionInfo
	manifest *depsyncpb.RevisionManifest
	blobs    map[[32]byte][]byte
	blobReqs int
}

func (e *evil) Latest(context.Context, *depsyncpb.LatestRequest) (*depsyncpb.RevisionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.info, nil
}

func (e *evil) Manifest(context.Context, *depsyncpb.ManifestRequest) (*depsyncpb.RevisionManifest, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.manifest, nil
}

func (e *evil) Blob(req *depsyncpb.BlobRequest, st depsyncpb.DepSync_BlobServer) error {
	e.mu.Lock()
	b, ok := e.blobs[[32]byte(req.GetSha256())]
	e.blobReqs++
	e.mu.Unlock()
	if !ok {
		return status.Error(codes.NotFound, "no")
	}
	return st.Send(&depsyncpb.Chunk{Data: b[req.GetOffset():]})
}

type efile struct {
	path    string
	mode    fs.FileMode
	content string
	// hash, when set, is the hash to announce instead of the content's.
	hash []byte
}

// set makes e serve a revision of files; the root is computed honestly
// unless root is given.
func (e *evil) set(epoch, seq uint64, files []efile, root []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pm := &depsyncpb.RevisionManifest{Epoch: epoch, Seq: seq}
	var size uint64
	e.blobs = map[[32]byte][]byte{}
	for _, f := range files {
		sum := sha256.Sum256([]byte(f.content))
		h := sum[:]
		if f.hash != nil {
			h = f.hash
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		pm.Files = append(pm.Files, &depsyncpb.File{Path: f.path, Mode: uint32(mode), Size: uint64(len(f.content)), Sha256: h})
		if len(h) == 32 {
			e.blobs[[32]byte(h)] = []byte(f.content)
		}
		size += uint64(len(f.content))
	}
	if root == nil {
		root = depsync.RootOf(pm)
	}
	pm.Root = root
	e.manifest = pm
	e.info = &depsyncpb.RevisionInfo{Epoch: epoch, Seq: seq, Root: root, Files: uint64(len(files)), Size: size}
}

// TestBadInputIsRefused: every bad revision a manager could serve is
// refused with an error that names what is wrong, and nothing changes on
// the follower's disk.
func TestBadInputIsRefused(t *testing.T) {
	const domain = "depsync.bad"
	e := &evil{}
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager,
		register: func(s *grpc.Server) { depsyncpb.RegisterDepSyncServer(s, e) }})
	waitActive(t, m)
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(),
		opts: depsync.WithoutFollowing(depsync.Options{MaxFileSize: 100, MaxTotalSize: 150, MaxFiles: 3})})
	waitConverged(t, 2, m, w)
	ctx := context.Background()

	// A good revision first, at epoch 5 seq 3.
	e.set(5, 3, []efile{{path: "app/ok.txt", content: "good"}}, nil)
	good, err := w.s.Sync(ctx)
	if err != nil || good.ID() != "5-3" {
		t.Fatalf("Sync of the good revision = %v, %v", good, err)
	}
	before := treeOf(t, w.dir)

	bad := sha256.Sum256([]byte("something else"))
	cases := []struct {
		name  string
		epoch uint64
		seq   uint64
		files []efile
		root  []byte
		want  error
		names string
	}{
		{"absolute path", 5, 4, []efile{{path: "/etc/passwd", content: "x"}}, nil, depsync.ErrUnsafePath, "/etc/passwd"},
		{"dot-dot", 5, 4, []efile{{path: "app/../../escape", content: "x"}}, nil, depsync.ErrUnsafePath, "app/../../escape"},
		{"leading dot-dot", 5, 4, []efile{{path: "../escape", content: "x"}}, nil, depsync.ErrUnsafePath, "../escape"},
		{"unclean", 5, 4, []efile{{path: "a//b", content: "x"}}, nil, depsync.ErrUnsafePath, "a//b"},
		{"empty path", 5, 4, []efile{{path: "", content: "x"}}, nil, depsync.ErrUnsafePath, "empty"},
		{"symlink", 5, 4, []efile{{path: "link", mode: fs.ModeSymlink | 0o777, content: "/etc/passwd"}}, nil, depsync.ErrNotRegular, "link"},
		{"device", 5, 4, []efile{{path: "dev", mode: fs.ModeDevice | 0o644, content: "x"}}, nil, depsync.ErrNotRegular, "dev"},
		{"fifo", 5, 4, []efile{{path: "pipe", mode: fs.ModeNamedPipe | 0o644, content: "x"}}, nil, depsync.ErrNotRegular, "pipe"},
		{"socket", 5, 4, []efile{{path: "sock", mode: fs.ModeSocket | 0o644, content: "x"}}, nil, depsync.ErrNotRegular, "sock"},
		{"setuid", 5, 4, []efile{{path: "suid", mode: fs.ModeSetuid | 0o755, content: "x"}}, nil, depsync.ErrNotRegular, "suid"},
		{"duplicate", 5, 4, []efile{{path: "a", content: "x"}, {path: "a", content: "y"}}, nil, depsync.ErrDuplicatePath, "\"a\""},
		{"file and directory", 5, 4, []efile{{path: "a", content: "x"}, {path: "a/b", content: "y"}}, nil, depsync.ErrDuplicatePath, "\"a\""},
		{"short hash", 5, 4, []efile{{path: "h", content: "x", hash: []byte{1, 2, 3}}}, nil, depsync.ErrBadHash, "\"h\""},
		{"wrong root", 5, 4, []efile{{path: "r", content: "x"}}, bad[:], depsync.ErrBadHash, "root"},
		{"blob hash mismatch", 5, 4, []efile{{path: "m", content: "x", hash: bad[:]}}, nil, depsync.ErrHashMismatch, "\"m\""},
		{"file too large", 5, 4, []efile{{path: "big", content: strings.Repeat("x", 101)}}, nil, depsync.ErrTooLarge, "big"},
		{"total too large", 5, 4, []efile{{path: "a", content: strings.Repeat("a", 80)}, {path: "b", content: strings.Repeat("b", 80)}}, nil, depsync.ErrTooLarge, "\"b\""},
		{"too many files", 5, 4, []efile{{path: "1", content: "1"}, {path: "2", content: "2"}, {path: "3", content: "3"}, {path: "4", content: "4"}}, nil, depsync.ErrTooLarge, "4 files"},
		{"older epoch", 4, 9, []efile{{path: "old", content: "x"}}, nil, depsync.ErrFenced, "4-9"},
		{"older seq", 5, 2, []efile{{path: "old", content: "x"}}, nil, depsync.ErrFenced, "5-2"},
		{"same revision, other content", 5, 3, []efile{{path: "other", content: "x"}}, nil, depsync.ErrFenced, "5-3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.set(c.epoch, c.seq, c.files, c.root)
			got, err := w.s.Sync(ctx)
			if !errors.Is(err, c.want) {
				t.Fatalf("Sync: %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.names) {
				t.Fatalf("error %q does not name %s", err, c.names)
			}
			if got != good || w.s.Current() != good {
				t.Fatalf("current is %v, want %v", w.s.Current(), good)
			}
			if after := treeOf(t, w.dir); after != before {
				t.Fatalf("disk changed:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
}
