package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
	"github.com/carbonkit/carbon/role"
)

// recorder is a testing.TB that records failures instead of stopping the
// goroutine, and runs its cleanups on demand.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	fatals   []string
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// The leak check of the cleanup is not vacuous: a goroutine started after
// the cluster and still running when it stops is reported.
func TestCleanupReportsLeakedGoroutine(t *testing.T) {
	r := &recorder{TB: t}
	c := clustertest.Start(r, clustertest.Options{}, clustertest.Workers(2)...)
	release := make(chan struct{})
	go func() { <-release }()
	r.runCleanups()
	close(release)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "goroutines left") {
		t.Fatalf("cleanup errors = %q, want one leak report", r.errors)
	}
	if len(c.Nodes()) != 0 {
		t.Fatalf("nodes still running after cleanup: %d", len(c.Nodes()))
	}
}

// Faults that need the in-memory network fail the test clearly on loopback.
func TestNetworkFaultsOnLoopbackFailTheTest(t *testing.T) {
	r := &recorder{TB: t}
	c := clustertest.Start(r, clustertest.Options{Network: clustertest.Loopback, NoLeakCheck: true}, clustertest.Workers(2)...)
	defer r.runCleanups()
	c.Partition([]string{"worker-1"})
	c.SetLoss(0.1)
	c.SetLatency(time.Millisecond)
	c.Cut("worker-1", "worker-2")
	c.Heal()
	if len(r.fatals) != 5 {
		t.Fatalf("got %d failures, want 5: %q", len(r.fatals), r.fatals)
	}
	for _, f := range r.fatals {
		if !strings.Contains(f, "needs the InMemory network") {
			t.Errorf("failure %q does not say it needs InMemory", f)
		}
	}
}

// Misuse is reported with errors that name what is wrong.
func TestMisuseIsReported(t *testing.T) {
	r := &recorder{TB: t}
	c := clustertest.Start(r, clustertest.Options{NoLeakCheck: true}, clustertest.Workers(2)...)
	defer r.runCleanups()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	if _, err := c.Join(ctx, clustertest.NodeSpec{Name: "worker-1", Role: role.Worker}); err == nil || !strings.Contains(err.Error(), `"worker-1" is already`) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := c.Join(ctx, clustertest.NodeSpec{Name: "bad", Role: "chef"}); !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Errorf("bad role: %v, want ErrInvalidConfig", err)
	}
	if err := c.Drain(ctx, "nobody"); !errors.Is(err, clustertest.ErrUnknownNode) {
		t.Errorf("Drain(nobody): %v, want ErrUnknownNode", err)
	}
	c.Crash("worker-2")
	if err := c.Leave(ctx, "worker-2"); !errors.Is(err, clustertest.ErrNotRunning) {
		t.Errorf("Leave of a crashed node: %v, want ErrNotRunning", err)
	}
	c.Restart("worker-1")
	c.Partition([]string{"worker-1"}, []string{"worker-1"})
	c.SetLoss(2)
	if len(r.fatals) != 3 {
		t.Fatalf("got failures %q, want 3 (restart of a running node, node in two groups, loss > 1)", r.fatals)
	}
	for i, want := range []string{"is running", "in two groups", "fraction from 0 to 1"} {
		if !strings.Contains(r.fatals[i], want) {
			t.Errorf("failure %q does not say %q", r.fatals[i], want)
		}
	}
	// The timeout of a wait names the condition and the view that is wrong.
	short, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	err := c.WaitFor(short, "the impossible", func() bool { return false })
	if !errors.Is(err, clustertest.ErrNotConverged) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the impossible") {
		t.Errorf("WaitFor timeout: %v", err)
	}
}

// Roles, sub-domains and observers from the specs reach the views.
func TestSpecsReachTheViews(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Domain: "specs"},
		clustertest.NodeSpec{Role: role.Manager, SubDomain: "mgt-a"},
		clustertest.NodeSpec{Name: "edge", Role: role.Worker, SubDomain: "edge", Endpoints: map[string]string{"grpc": "10.1.1.1:9000"}},
		clustertest.NodeSpec{Observer: true},
		clustertest.NodeSpec{Role: role.Worker, Config: func(cfg *cluster.Config) { cfg.Properties = map[string]string{"zone": "z1"} }},
	)
	v := c.Node("observer-1").View()
	for _, tc := range []struct {
		name, sub string
		role      role.Role
		observer  bool
	}{{"manager-1", "mgt-a", role.Manager, false}, {"edge", "edge", role.Worker, false}, {"observer-1", "", role.None, true}, {"worker-1", "worker", role.Worker, false}} {
		m, ok := v.Member(tc.name)
		if !ok || m.SubDomain != tc.sub || m.Role != tc.role || m.Observer != tc.observer || m.Domain != "specs" {
			t.Errorf("%s: got %+v (found %v), want sub-domain %q role %q observer %v", tc.name, m, ok, tc.sub, tc.role, tc.observer)
		}
	}
	if m, _ := v.Member("edge"); m.Endpoints["grpc"] != "10.1.1.1:9000" {
		t.Errorf("edge endpoints: %v", m.Endpoints)
	}
	if m, _ := v.Member("worker-1"); m.Properties["zone"] != "z1" {
		t.Errorf("worker-1 properties: %v", m.Properties)
	}
	if a, ok := v.Active("mgt-a"); !ok || a.Name != "manager-1" {
		t.Errorf("active of mgt-a: %v %v", a.Name, ok)
	}
}

// WaitSees returns once every running node sees a crashed node failed;
// while some node does not, its error says which node sees what.
func TestWaitSeesNamesTheViewThatDiffers(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, clustertest.Workers(3)...)
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	err := c.WaitSees(short, nil, cluster.StatusFailed, "worker-3")
	cancel()
	if !errors.Is(err, clustertest.ErrNotConverged) || !strings.Contains(err.Error(), "sees worker-3 alive (serving)") {
		t.Fatalf("WaitSees on a live worker-3 = %v, want ErrNotConverged naming a node that sees worker-3 alive (serving)", err)
	}
	c.Crash("worker-3")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitSees(ctx, nil, cluster.StatusFailed, "worker-3"); err != nil {
		t.Fatal(err)
	}
	if !c.Sees([]string{"worker-1", "worker-2"}, cluster.StatusFailed, "worker-3") {
		t.Fatal("WaitSees returned but Sees does not hold")
	}
}
