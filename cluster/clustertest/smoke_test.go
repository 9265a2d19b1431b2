package clustertest_test

import (
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
)

func TestSmoke(t *testing.T) {
	for _, nw := range []clustertest.Network{clustertest.InMemory, clustertest.Loopback} {
		t.Run(nw.String(), func(t *testing.T) {
			start := time.Now()
			c := clustertest.Start(t, clustertest.Options{Network: nw, Logger: logger()}, append(clustertest.Managers(1), clustertest.Workers(3)...)...)
			t.Logf("started in %v", time.Since(start))
			t.Log("\n" + c.Summary("worker-1"))
			c.Crash("worker-3")
			start = time.Now()
			c.Eventually("worker-3 failed", 10*time.Second, func() bool { return c.Sees(nil, cluster.StatusFailed, "worker-3") })
			t.Logf("crash seen in %v", time.Since(start))
			c.Restart("worker-3")
			start = time.Now()
			if err := c.WaitConverged(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Logf("restart converged in %v", time.Since(start))
		})
	}
}
