package patterns

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/examples/internal/server"
	"github.com/carbonkit/carbon/internal/leakcheck"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

// TestTourFailsWhenBroken breaks a pattern 3 topology before the tour (one
// worker and the stand-by manager crash) and checks that the steps that
// cannot hold say so: the tour is a test that can fail.
func TestTourFailsWhenBroken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var progress bytes.Buffer
	// A step may take up to failure detection plus the manager's wait for
	// stand-by confirmations (2 s): the stand-by killed below is confirmed
	// dead only after detection, until then writes answer 503.
	topo, err := Start(ctx, Options{Pattern: 3, StepTimeout: 6 * time.Second, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	for _, s := range []int{1} {
		topo.Workers[s].Kill()
		topo.killed[topo.Workers[s]] = true
	}
	standby := settledStandby(t, topo)
	standby.Kill()
	topo.killed[standby] = true
	r := topo.Tour(ctx)
	t.Logf("tour of a broken topology:\n%s", progress.String())
	held := map[string]bool{}
	for _, s := range r.Steps {
		held[s.Name] = s.Held
	}
	want := map[string]bool{
		"reads through the worker balancer succeed and spread":     false,
		"a write sent to a worker is rejected":                     true,
		"a write through the manager balancer succeeds":            true,
		"the deployed artifact reaches every worker":               false,
		"the management console is on managers only":               true,
		"the active manager is killed and the stand-by takes over": false,
	}
	for name, w := range want {
		if h, ok := held[name]; !ok || h != w {
			t.Errorf("step %q: held=%v (present %v), want held=%v", name, h, ok, w)
		}
	}
	if r.Held() {
		t.Error("Report.Held() is true for a broken topology")
	}
	if !strings.Contains(progress.String(), "[NOT HELD]") {
		t.Error("progress does not say plainly that steps did not hold")
	}
}

// settledStandby waits until the managers' domain has settled, every manager
// and the tour's observer naming the same active manager, that one writable
// and the other not, and returns the other by name. Picking "whoever is not
// writable at this instant" instead can catch an election midway and kill
// the active, or both managers.
func settledStandby(t *testing.T, topo *Topology) *server.Server {
	t.Helper()
	if len(topo.Managers) != 2 {
		t.Fatalf("%d managers, want 2", len(topo.Managers))
	}
	var standby *server.Server
	testutil.WaitFor(t, 10*time.Second, "the managers to agree on one writable active manager", func() bool {
		active, ok := topo.watch.Active(cluster.SubDomainManager)
		if !ok {
			return false
		}
		standby = nil
		for _, m := range topo.Managers {
			if a, ok := m.Node().Active(cluster.SubDomainManager); !ok || a.Name != active.Name {
				return false
			}
			isActive := m.Node().Name() == active.Name
			if m.Node().Writable() != isActive {
				return false
			}
			if !isActive {
				standby = m
			}
		}
		return standby != nil
	})
	return standby
}

func TestStartBadPattern(t *testing.T) {
	for _, p := range []int{0, 4, -1} {
		if _, err := Start(context.Background(), Options{Pattern: p}); err == nil || !strings.Contains(err.Error(), "pattern must be 1, 2 or 3") {
			t.Errorf("pattern %d: %v", p, err)
		}
	}
}

// A server that takes the address of a killed one is not taken for it:
// the tour's steps that call one server directly (a write to a worker,
// the artifact on every worker) check the instance that answered. Under a
// parallel `go test ./...` another package's topology, with the same node
// names and artifacts, once took a killed worker's port within a second
// and TestTourFailsWhenBroken saw the artifact "reach" the dead worker.
func TestDirectCallsRefuseAnotherServerAtTheAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topo, err := Start(ctx, Options{Pattern: 1, StepTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	live, dead := topo.Workers[0], topo.Workers[1]
	c, err := topo.serverClient(live)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListArtifacts(ctx, &pb.ListArtifactsRequest{}); err != nil {
		t.Fatalf("the live worker's own instance was refused: %v", err)
	}

	dead.Kill()
	topo.killed[dead] = true
	impostor, err := server.Start(ctx, server.Config{
		// Same domain and CA, not joined to it: its certificate passes the
		// TLS handshake, so only the instance check can tell it apart.
		Cluster:  topo.clusterConfig(dead.Node().Domain(), dead.Node().Name(), role.Worker),
		GRPCAddr: dead.GRPCAddr(),
	})
	if err != nil {
		t.Fatalf("taking the killed worker's address %s: %v", dead.GRPCAddr(), err)
	}
	defer impostor.Kill()
	if impostor.GRPCAddr() != dead.GRPCAddr() || impostor.Instance() == dead.Instance() {
		t.Fatalf("impostor at %s (instance %s), killed worker at %s (instance %s)", impostor.GRPCAddr(), impostor.Instance(), dead.GRPCAddr(), dead.Instance())
	}
	c, err = topo.serverClient(dead)
	if err != nil {
		t.Fatal(err)
	}
	// Both kinds of answer: a response, and an error status (the Guard's).
	if _, err := c.ListArtifacts(ctx, &pb.ListArtifactsRequest{}); err == nil || !strings.Contains(err.Error(), "another server answered") {
		t.Errorf("read answered by the impostor: err = %v, want another server answered", err)
	}
	_, err = c.DeployArtifact(ctx, &pb.DeployArtifactRequest{Name: "webapp", Version: "0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "another server answered") {
		t.Errorf("write rejected by the impostor: err = %v, want another server answered", err)
	}
}
