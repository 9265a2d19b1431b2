package clustertest_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
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
