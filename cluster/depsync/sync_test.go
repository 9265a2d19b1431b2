package depsync_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/role"
)

// TestPublishReachesEveryWorker: one manager, three workers; two
// publishes, the second deleting, changing and adding files, reach every
// worker byte for byte, and the folder is reconciled exactly.
func TestPublishReachesEveryWorker(t *testing.T) {
	const domain = "depsync.publish"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	var ws []*tnode
	for i := range 3 {
		ws = append(ws, startNode(t, nodeCfg{domain: domain, name: fmt.Sprintf("w%d", i), role: role.Worker, seed: m.seed()}))
	}
	waitConverged(t, 4, append(ws, m)...)

	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"app.war":            "war v1",
		"conf/app.xml":       "<app/>",
		"conf/empty":         "",
		"bin/run.sh":         "#!/bin/sh\necho hi\n",
		"lib/a.jar":          "same bytes",
		"lib/b.jar":          "same bytes",
		"deep/x/y/z/q.txt":   "deep",
		"to-be-removed.conf": "old",
	}, map[string]fs.FileMode{"bin/run.sh": 0o755, "conf/app.xml": 0o600})
	ctx := context.Background()
	r1, err := m.s.Publish(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Files != 8 || r1.Seq != 1 || r1.Epoch != m.n.Epoch() {
		t.Fatalf("Publish = %+v, want 8 files, seq 1, epoch %d", r1, m.n.Epoch())
	}
	waitRevision(t, r1, ws...)
	for _, w := range ws {
		sameFiles(t, src, w)
	}

	// Second revision: a file removed, one changed, one added.
	if err := os.Remove(filepath.Join(src, "to-be-removed.conf")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, map[string]string{"app.war": "war v2", "new/file": "new"}, nil)
	r2, err := m.s.Publish(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Before(r2) || r2.Seq != 2 {
		t.Fatalf("second revision %v is not after %v", r2, r1)
	}
	waitRevision(t, r2, ws...)
	for _, w := range ws {
		sameFiles(t, src, w)
		if _, err := os.Stat(filepath.Join(w.s.Dir(), "to-be-removed.conf")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: removed file still deployed: %v", w.name, err)
		}
	}
	// Bytes: the workers received the set once each; the manager sent
	// at least one copy of it.
	var sentByManager int64
	for _, w := range ws {
		st := w.s.Stats()
		var got int64
		for _, n := range st.BytesReceived {
			got += n
		}
		if got == 0 {
			t.Fatalf("%s received nothing", w.name)
		}
		sentByManager += st.BytesReceived["m1"]
	}
	if ms := m.s.Stats(); ms.BytesSent != sentByManager {
		t.Fatalf("manager says it sent %d bytes, workers say they got %d from it", ms.BytesSent, sentByManager)
	}
}

// TestLateJoinerCatchesUp: a worker that joins after two publishes gets
// the latest revision, without waiting for a new announcement.
func TestLateJoinerCatchesUp(t *testing.T) {
	const domain = "depsync.late"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	w0 := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed()})
	w1 := startNode(t, nodeCfg{domain: domain, name: "w1", role: role.Worker, seed: m.seed()})
	waitConverged(t, 3, m, w0, w1)
	src := t.TempDir()
	randomTree(t, src, 20, 8<<10, 1)
	if _, err := m.s.Publish(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, map[string]string{"extra": "x"}, nil)
	r2, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, r2, w0, w1)

	late := startNode(t, nodeCfg{domain: domain, name: "w9", role: role.Worker, seed: w0.seed(),
		opts: depsync.Options{PollInterval: time.Hour}})
	waitRevision(t, r2, late)
	sameFiles(t, src, late)
	t.Logf("late joiner received %v", late.s.Stats().BytesReceived)
}

// TestManagerFailover: the stand-by manager follows the active one; when
// the active one dies, the stand-by takes over with a higher epoch and its
// revisions continue the line on every worker.
func TestManagerFailover(t *testing.T) {
	const domain = "depsync.failover"
	m1 := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m1)
	m2 := startNode(t, nodeCfg{domain: domain, name: "m2", role: role.Manager, seed: m1.seed()})
	w0 := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m1.seed()})
	w1 := startNode(t, nodeCfg{domain: domain, name: "w1", role: role.Worker, seed: m1.seed()})
	waitConverged(t, 4, m1, m2, w0, w1)
	// Which manager is active once both see each other is the election's
	// business; the test only needs one of each.
	var active, standby *tnode
	waitFor(t, 10*time.Second, "one active manager", func() bool {
		a, b := m1.n.Writable(), m2.n.Writable()
		switch {
		case a && !b:
			active, standby = m1, m2
		case b && !a:
			active, standby = m2, m1
		default:
			return false
		}
		return true
	})

	src := t.TempDir()
	writeTree(t, src, map[string]string{"a": "one", "b/c": "two"}, nil)
	r1, err := active.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := standby.s.Publish(context.Background(), src); !errors.Is(err, depsync.ErrNotActive) {
		t.Fatalf("Publish on the stand-by: %v, want ErrNotActive", err)
	}
	waitRevision(t, r1, standby, w0, w1)

	active.close()
	waitActive(t, standby)
	if standby.n.Epoch() <= r1.Epoch {
		t.Fatalf("new epoch %d is not above %d", standby.n.Epoch(), r1.Epoch)
	}
	writeTree(t, src, map[string]string{"a": "one, after failover"}, nil)
	r2, err := standby.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Before(r2) || r2.Epoch != standby.n.Epoch() || r2.Seq != r1.Seq+1 {
		t.Fatalf("revision after failover %v does not continue %v", r2, r1)
	}
	waitRevision(t, r2, w0, w1)
	sameFiles(t, src, w0)
	sameFiles(t, src, w1)
}

// TestCrashMidTransferResumes: the synchronizer of a worker stops in the
// middle of a transfer; a new one on the same folder fetches only what is
// missing.
func TestCrashMidTransferResumes(t *testing.T) {
	const domain = "depsync.crash"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	reached := make(chan struct{})
	var once sync.Once
	blobs := 0
	var mu sync.Mutex
	opts := depsync.WithAfterBlob(depsync.Options{Parallel: 1}, func(ctx context.Context) {
		mu.Lock()
		blobs++
		n := blobs
		mu.Unlock()
		if n == 10 {
			once.Do(func() { close(reached) })
			<-ctx.Done() // "crash": never finish this transfer
		}
	})
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(), opts: opts})
	waitConverged(t, 2, m, w)

	src := t.TempDir()
	size := randomTree(t, src, 30, 16<<10, 2)
	rev, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the transfer never reached 10 blobs")
	}
	if got := w.s.Current(); got == rev {
		t.Fatal("the crashed transfer switched")
	}
	w.restart(t, depsync.Options{})
	waitRevision(t, rev, w)
	sameFiles(t, src, w)
	got := w.s.Stats().BytesReceived["m1"]
	if want := size - 10*(16<<10); got != want {
		t.Fatalf("after the restart %d bytes were fetched, want the %d missing", got, want)
	}
}

// TestPartialBlobResumes: a blob half received before a restart is
// continued from its last byte.
func TestPartialBlobResumes(t *testing.T) {
	const domain = "depsync.partial"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	src := t.TempDir()
	content := strings.Repeat("0123456789abcdef", 8192) // 128 KiB
	writeTree(t, src, map[string]string{"big.bin": content}, nil)
	rev, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "w0")
	if err := os.MkdirAll(filepath.Join(dir, "partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-blob leaves: the first 50,000 bytes.
	sum := fmt.Sprintf("%x", sha256Sum([]byte(content)))
	if err := os.WriteFile(filepath.Join(dir, "partial", sum), []byte(content[:50000]), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(), opts: depsync.Options{Dir: dir}})
	waitRevision(t, rev, w)
	sameFiles(t, src, w)
	if got, want := w.s.Stats().BytesReceived["m1"], int64(len(content)-50000); got != want {
		t.Fatalf("fetched %d bytes, want the missing %d", got, want)
	}
}

// TestDeployHookRollback: a failing hook rolls back to the previous
// revision (and is called again for it); the failed revision is not
// retried; a newer one is applied.
func TestDeployHookRollback(t *testing.T) {
	const domain = "depsync.hook"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	var mu sync.Mutex
	var calls []string
	failSeq := uint64(2)
	hook := func(ctx context.Context, rev depsync.Revision, dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "app.war"))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, fmt.Sprintf("%d:%s", rev.Seq, b))
		if rev.Seq == failSeq {
			return errors.New("bad war")
		}
		return nil
	}
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(),
		opts: depsync.WithoutFollowing(depsync.Options{Deploy: hook})})
	waitConverged(t, 2, m, w)
	ctx := context.Background()
	src := t.TempDir()

	writeTree(t, src, map[string]string{"app.war": "v1"}, nil)
	r1, err := m.s.Publish(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.s.Sync(ctx); err != nil || got != r1 {
		t.Fatalf("Sync = %v, %v; want %v", got, err, r1)
	}
	before := treeOf(t, w.s.Dir()+"/")

	writeTree(t, src, map[string]string{"app.war": "v2"}, nil)
	if _, err := m.s.Publish(ctx, src); err != nil {
		t.Fatal(err)
	}
	got, err := w.s.Sync(ctx)
	if !errors.Is(err, depsync.ErrDeploy) || !strings.Contains(err.Error(), "bad war") {
		t.Fatalf("Sync with a failing hook: %v, want ErrDeploy wrapping the hook's error", err)
	}
	if got != r1 || w.s.Current() != r1 {
		t.Fatalf("after the rollback the node is on %v, want %v", got, r1)
	}
	if after := treeOf(t, w.s.Dir()+"/"); after != before {
		t.Fatalf("rolled-back folder differs:\n%s\nwant\n%s", after, before)
	}
	fileEq(t, filepath.Join(w.s.Dir(), "app.war"), []byte("v1"))
	// Not retried.
	if _, err := w.s.Sync(ctx); !errors.Is(err, depsync.ErrRevisionFailed) {
		t.Fatalf("Sync of the failed revision again: %v, want ErrRevisionFailed", err)
	}
	mu.Lock()
	want := "1:v1 2:v2 1:v1"
	if got := strings.Join(calls, " "); got != want {
		t.Fatalf("hook calls %q, want %q", got, want)
	}
	mu.Unlock()

	writeTree(t, src, map[string]string{"app.war": "v3"}, nil)
	r3, err := m.s.Publish(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Seq != 3 {
		t.Fatalf("third revision has seq %d", r3.Seq)
	}
	if got, err := w.s.Sync(ctx); err != nil || got != r3 {
		t.Fatalf("Sync = %v, %v; want %v", got, err, r3)
	}
	fileEq(t, filepath.Join(w.s.Dir(), "app.war"), []byte("v3"))
}

// TestRestartReconcilesFolder: files added, changed or removed in the
// deployment folder behind the synchronizer's back are undone on restart.
func TestRestartReconcilesFolder(t *testing.T) {
	const domain = "depsync.reconcile"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed()})
	src := t.TempDir()
	writeTree(t, src, map[string]string{"a": "alpha", "b/c": "gamma", "mode.sh": "x"}, map[string]fs.FileMode{"mode.sh": 0o755})
	rev, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, rev, w)
	dep := w.s.Dir()
	if err := os.WriteFile(filepath.Join(dep, "intruder"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dep, "b", "c")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dep, "mode.sh")); err != nil {
		t.Fatal(err)
	}
	w.restart(t, depsync.Options{})
	if w.s.Current() != rev {
		t.Fatalf("after restart on %v, want %v", w.s.Current(), rev)
	}
	sameFiles(t, src, w)
}

func TestPublishRefusesBadFolders(t *testing.T) {
	const domain = "depsync.badpublish"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager,
		opts: depsync.Options{MaxFileSize: 100, MaxTotalSize: 250, MaxFiles: 4}})
	waitActive(t, m)
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed()})
	ctx := context.Background()
	good := t.TempDir()
	writeTree(t, good, map[string]string{"ok": "fine"}, nil)
	if _, err := w.s.Publish(ctx, good); !errors.Is(err, depsync.ErrNotActive) {
		t.Fatalf("Publish on a worker: %v, want ErrNotActive", err)
	}
	r1, err := m.s.Publish(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, m.opts.Dir)

	cases := []struct {
		name  string
		setup func(dir string)
		want  error
		names string
	}{
		{"symlink", func(d string) {
			writeTree(t, d, map[string]string{"a": "1", "z": "2"}, nil)
			os.Symlink("/etc/passwd", filepath.Join(d, "link"))
		}, depsync.ErrNotRegular, "link"},
		{"fifo", func(d string) {
			writeTree(t, d, map[string]string{"a": "1"}, nil)
			if err := mkfifo(filepath.Join(d, "pipe")); err != nil {
				t.Skip("no mkfifo:", err)
			}
		}, depsync.ErrNotRegular, "pipe"},
		{"file too large", func(d string) {
			writeTree(t, d, map[string]string{"a": "1", "big": strings.Repeat("x", 101)}, nil)
		}, depsync.ErrTooLarge, "big"},
		{"total too large", func(d string) {
			writeTree(t, d, map[string]string{"a": strings.Repeat("a", 100), "b": strings.Repeat("b", 100), "c": strings.Repeat("c", 100)}, nil)
		}, depsync.ErrTooLarge, "\"c\""},
		{"too many files", func(d string) {
			writeTree(t, d, map[string]string{"1": "1", "2": "2", "3": "3", "4": "4", "5": "5"}, nil)
		}, depsync.ErrTooLarge, "4 files"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			c.setup(d)
			_, err := m.s.Publish(ctx, d)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.names) {
				t.Fatalf("Publish: %v, want %v naming %s", err, c.want, c.names)
			}
			if after := treeOf(t, m.opts.Dir); after != before {
				t.Fatalf("the refused publish changed the store:\nbefore\n%s\nafter\n%s", before, after)
			}
			if m.s.Current() != r1 {
				t.Fatalf("current is %v, want %v", m.s.Current(), r1)
			}
		})
	}
}
