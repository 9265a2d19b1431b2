package patterns

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/internal/leakcheck"
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
	topo, err := Start(ctx, Options{Pattern: 3, StepTimeout: 2 * time.Second, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	for _, s := range []int{1} {
		topo.Workers[s].Kill()
		topo.killed[topo.Workers[s]] = true
	}
	for _, m := range topo.Managers {
		if !m.Node().Writable() {
			m.Kill()
			topo.killed[m] = true
		}
	}
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

func TestStartBadPattern(t *testing.T) {
	for _, p := range []int{0, 4, -1} {
		if _, err := Start(context.Background(), Options{Pattern: p}); err == nil || !strings.Contains(err.Error(), "pattern must be 1, 2 or 3") {
			t.Errorf("pattern %d: %v", p, err)
		}
	}
}
