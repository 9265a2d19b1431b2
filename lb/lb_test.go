package lb

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestSpreadAcrossWorkers(t *testing.T) {
	c := startWorkers(t, 3)
	for _, p := range []Policy{RoundRobin, LeastLoaded} {
		t.Run(p.String(), func(t *testing.T) {
			cc, err := Dial(c.observer, "worker", WithPolicy(p), WithLogger(testLogger()), WithSlowStart(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			get(t, cc, 3, nil) // connect
			// Wait for all three connections to be in service.
			waitFor(t, 10*time.Second, "calls on every worker", func() bool {
				resetCounts(c.workers)
				get(t, cc, 30, nil)
				for _, n := range counts(c.workers) {
					if n == 0 {
						return false
					}
				}
				return true
			})
			// Least-loaded spreads by in-flight calls: send them 6 at a time.
			const calls, par = 300, 6
			lo, hi := int64(calls/10), int64(calls) // p2c follows latency; each gets a share
			if p == RoundRobin {
				lo, hi = calls/3*0.9, calls/3*1.1
			}
			outside := func(got map[string]int64) string {
				for name, n := range got {
					if n < lo || n > hi {
						return fmt.Sprintf("%s: %s served %d of %d calls, want %d..%d", p, name, n, calls, lo, hi)
					}
				}
				return ""
			}
			if p == RoundRobin {
				if why := outside(batch(t, cc, c.workers, calls, par)); why != "" {
					t.Error(why)
				}
				return
			}
			// A member that looked slow for a moment (a busy machine) gets
			// few calls until its latency sample is 5 s old, by design; a
			// batch where every worker has its share must still come.
			waitFor(t, 15*time.Second, "a batch where every worker serves its share", func() bool {
				why := outside(batch(t, cc, c.workers, calls, par))
				if why != "" {
					t.Log(why)
				}
				return why == ""
			})
		})
	}
}

// TestViewChangesStopCalls: a worker that crashes (its node stops but its
// gRPC server still answers), drains or leaves gets no new calls once the
// client's view has changed, though its server is still up.
func TestViewChangesStopCalls(t *testing.T) {
	for _, how := range []string{"crash", "drain", "leave"} {
		t.Run(how, func(t *testing.T) {
			c := startWorkers(t, 3)
			cc, err := Dial(c.observer, "worker", WithPolicy(RoundRobin), WithLogger(testLogger()), WithSlowStart(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			get(t, cc, 30, nil)
			gone := c.workers[1]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			switch how {
			case "crash":
				_ = gone.node.Close()
			case "drain":
				if err := gone.node.Drain(ctx); err != nil {
					t.Fatalf("Drain: %v", err)
				}
			case "leave":
				if err := gone.node.Leave(ctx); err != nil {
					t.Fatalf("Leave: %v", err)
				}
			}
			c.waitRoutable(t, c.observer, "worker", 2)
			// The picker follows the view asynchronously: wait for it.
			waitFor(t, 5*time.Second, "the picker to drop "+gone.name, func() bool {
				before := gone.calls.Load()
				get(t, cc, 10, nil)
				return gone.calls.Load() == before
			})
			resetCounts(c.workers)
			get(t, cc, 100, nil)
			got := counts(c.workers)
			if got[gone.name] != 0 {
				t.Errorf("%s worker served %d calls after the view changed: %v", how, got[gone.name], got)
			}
			if got["w0"] == 0 || got["w2"] == 0 {
				t.Errorf("remaining workers not both used: %v", got)
			}
			_ = fmt.Sprint()
		})
	}
}
