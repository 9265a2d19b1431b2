package depsync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger() *slog.Logger {
	if os.Getenv("CARBON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// tnode is a cluster node with a gRPC server and a Syncer.
type tnode struct {
	name string
	n    *cluster.Node
	s    *depsync.Syncer
	srv  *grpc.Server
	dir  string
	opts depsync.Options

	closeOnce sync.Once
}

// close stops the syncer, the gRPC server and the node (a crash, for peers).
func (tn *tnode) close() {
	tn.closeOnce.Do(func() {
		if tn.s != nil {
			tn.s.Close()
		}
		tn.srv.Stop()
		tn.n.Close()
	})
}

// cfgFor is the test configuration of a node.
type nodeCfg struct {
	domain, name string
	role         role.Role
	seed         string
	opts         depsync.Options
	// register, when set, replaces the Syncer's service (an evil server).
	register func(*grpc.Server)
	// trust is the node's trust root and certificate (nil: none).
	trust *trust.Source
}

func startNode(t testing.TB, c nodeCfg) *tnode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.Config{
		Domain: c.domain, Role: c.role, NodeName: c.name, BindAddr: "127.0.0.1:0",
		Profile: cluster.ProfileLocal, Endpoints: map[string]string{"grpc": lis.Addr().String()},
		Logger: testLogger(), Trust: c.trust,
	}
	if c.trust != nil {
		cfg.NodeName = ""
	}
	if c.seed != "" {
		cfg.Seeds = []string{c.seed}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Join(ctx, cfg)
	if err != nil {
		lis.Close()
		t.Fatalf("Join(%s): %v", c.name, err)
	}
	var sopts []grpc.ServerOption
	if c.trust != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(trust.ServerTLSConfig(c.trust, trust.AuthorizeDomain(c.domain)))))
	}
	tn := &tnode{name: c.name, n: n, srv: grpc.NewServer(sopts...)}
	if c.register != nil {
		c.register(tn.srv)
	} else {
		tn.opts = c.opts
		if tn.opts.Dir == "" {
			tn.opts.Dir = filepath.Join(t.TempDir(), c.name)
		}
		if tn.opts.Logger == nil {
			tn.opts.Logger = testLogger()
		}
		if tn.opts.PollInterval == 0 {
			tn.opts.PollInterval = 300 * time.Millisecond
		}
		tn.dir = tn.opts.Dir
		tn.s, err = depsync.New(n, tn.opts)
		if err != nil {
			n.Close()
			lis.Close()
			t.Fatalf("New(%s): %v", c.name, err)
		}
		tn.s.Register(tn.srv)
	}
	go tn.srv.Serve(lis)
	t.Cleanup(tn.close)
	return tn
}

// restart replaces tn's Syncer by a new one on the same folder (a crash of
// the synchronizer; the node and its server stay).
func (tn *tnode) restart(t testing.TB, opts depsync.Options) {
	t.Helper()
	// A gRPC server cannot take a second registration: stop it and serve
	// the new Syncer on a new server at the same address.
	addr, _ := tn.n.Self().Endpoint("grpc")
	tn.s.Close()
	tn.srv.Stop()
	var lis net.Listener
	var err error
	waitFor(t, 5*time.Second, "the port to be free", func() bool {
		lis, err = net.Listen("tcp", addr)
		return err == nil
	})
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 300 * time.Millisecond
	}
	opts.Dir = tn.dir
	tn.opts = opts
	tn.s, err = depsync.New(tn.n, opts)
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	tn.srv = grpc.NewServer()
	tn.s.Register(tn.srv)
	go tn.srv.Serve(lis)
}

func (tn *tnode) seed() string { return tn.n.Self().Addr }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

func waitActive(t testing.TB, tn *tnode) {
	t.Helper()
	waitFor(t, 10*time.Second, tn.name+" to be the active manager", tn.n.Writable)
}

// waitConverged waits until every node sees want alive members.
func waitConverged(t testing.TB, want int, nodes ...*tnode) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d members", want), func() bool {
		for _, tn := range nodes {
			if len(tn.n.View().Alive("")) != want {
				return false
			}
		}
		return true
	})
}

// waitRevision waits until every node is on rev.
func waitRevision(t testing.TB, rev depsync.Revision, nodes ...*tnode) {
	t.Helper()
	waitFor(t, 20*time.Second, "revision "+rev.ID()+" everywhere", func() bool {
		for _, tn := range nodes {
			if tn.s.Current() != rev {
				return false
			}
		}
		return true
	})
}

// writeTree writes files (path -> content) under dir, with 0644 unless
// the path is in modes.
func writeTree(t testing.TB, dir string, files map[string]string, modes map[string]fs.FileMode) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := fs.FileMode(0o644)
		if m, ok := modes[p]; ok {
			mode = m
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// randomTree writes n files of about size bytes each (random content).
func randomTree(t testing.TB, dir string, n, size int, seed uint64) int64 {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed+1))
	var total int64
	buf := make([]byte, size)
	for i := range n {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(len(buf))
	}
	return total
}

// treeOf describes every entry under dir: path, kind, mode and content hash.
func treeOf(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
		case d.IsDir():
			// Directory modes are not part of a revision.
			lines = append(lines, rel+"/")
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, target))
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %x", rel, fi.Mode(), sha256.Sum256(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// sameFiles fails the test unless the deployment folder of tn holds
// exactly the regular files of src, byte for byte, with their modes.
func sameFiles(t testing.TB, src string, tn *tnode) {
	t.Helper()
	got, err := filepath.EvalSymlinks(tn.s.Dir())
	if err != nil {
		t.Fatalf("%s: %v", tn.name, err)
	}
	if a, b := treeOf(t, src), treeOf(t, got); a != b {
		t.Fatalf("%s: deployment folder differs from the source\nsource:\n%s\n%s:\n%s", tn.name, a, tn.name, b)
	}
}

func fileEq(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", path, got, want)
	}
}
