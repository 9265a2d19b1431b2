package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
	"github.com/carbonkit/carbon/role"
)

// Invariant: a cluster on the in-memory network runs inside a synctest
// bubble (virtual time, see the package doc) with production's LAN
// timings and keeps every promise of the fault suite there: each side of
// a partition sees itself alive and the other failed, one view after the
// heal, a crash seen failed by all, and the restarted node taken back.
// The crash takes at least memberlist's LAN probe interval (1 s) of the
// bubble's clock: failure detection ran on the protocol's timers, only
// without waiting for them in real time. The bubble also proves that no
// goroutine of the cluster outlives it: synctest.Test fails otherwise.
func TestFaultsInSynctestBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := func(cfg *cluster.Config) { cfg.Profile = cluster.ProfileLAN }
		c := clustertest.Start(t, clustertest.Options{Config: lan, Logger: logger()},
			append(clustertest.Managers(2), clustertest.Workers(6)...)...)

		left := []string{"manager-1", "worker-1", "worker-2", "worker-3"}
		right := []string{"manager-2", "worker-4", "worker-5", "worker-6"}
		c.Partition(left, right)
		waitConverged(t, c, time.Minute, "split")
		if !c.Sees(left, cluster.StatusFailed, right...) || !c.Sees(right, cluster.StatusFailed, left...) {
			t.Fatalf("split: a side does not see the other failed:\n%s\n%s", c.Summary("worker-1"), c.Summary("worker-4"))
		}
		c.Heal()
		waitConverged(t, c, time.Minute, "healed")

		start := time.Now() // the bubble's clock
		c.Crash("worker-6")
		c.Eventually("all to see worker-6 failed", time.Minute, func() bool {
			return c.Sees(nil, cluster.StatusFailed, "worker-6")
		})
		if took := time.Since(start); took < time.Second {
			t.Errorf("the crash was seen failed after %v of the bubble's clock, less than one LAN probe interval", took)
		}
		c.Restart("worker-6")
		waitConverged(t, c, time.Minute, "worker-6 restarted")
	})
}

// Invariant: nodes started at once (a deployment rolling out: three
// seeds, then all the others together) all see each other once each has
// had its first state exchange after its join, at most one gossip interval
// (200 ms on LAN timings) after it: that exchange goes to a seed, and every
// joiner exchanged state with every seed when it joined. Protocol time, on
// the bubble's clock (no wall time: the CPU the joins take does not count).
// With a random member as the first peer, convergence would wait for
// gossip and later exchanges, well past one gossip interval.
func TestMassStartConvergesAfterFirstExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		c := clustertest.New(t, clustertest.Options{Logger: logger(),
			Config: func(cfg *cluster.Config) { cfg.Profile = cluster.ProfileLAN }})
		var seeds []string
		for i := 1; i <= 3; i++ {
			nd := c.Add(clustertest.NodeSpec{Name: fmt.Sprintf("seed-%d", i), Role: role.Worker})
			seeds = append(seeds, nd.Self().Addr)
		}
		var wg sync.WaitGroup
		errs := make([]error, n-3)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = c.Join(t.Context(), clustertest.NodeSpec{
					Name: fmt.Sprintf("worker-%d", i+1), Role: role.Worker,
					Config: func(cfg *cluster.Config) { cfg.Seeds = seeds },
				})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// One gossip interval for the last exchange to start, and half of
		// one for the views to take it in.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := c.WaitConverged(ctx); err != nil {
			t.Fatalf("%d nodes started at once: %v", n, err)
		}
	})
}
