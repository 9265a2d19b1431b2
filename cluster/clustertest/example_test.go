package clustertest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
)

// Start a manager and three workers in memory, crash a worker and look at
// the domain as another worker sees it. In a test, pass t instead of nil:
// the cluster is then stopped and checked for leaks by t.Cleanup.
func Example() {
	c := clustertest.Start(nil, clustertest.Options{},
		append(clustertest.Managers(1), clustertest.Workers(3)...)...)
	defer c.Stop()

	c.Crash("worker-3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitSees(ctx, nil, cluster.StatusFailed, "worker-3"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(c.Summary("worker-1"))
	// Output:
	// manager-1 manager alive serving active
	// worker-1 worker alive serving
	// worker-2 worker alive serving
	// worker-3 worker failed serving
}

// Split a cluster in two and heal it: each side elects its own active
// manager while split (no Quorum is set), and they agree on one after.
func ExampleCluster_Partition() {
	c := clustertest.Start(nil, clustertest.Options{},
		append(clustertest.Managers(2), clustertest.Workers(2)...)...)
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c.Partition([]string{"manager-1", "worker-1"}, []string{"manager-2", "worker-2"})
	if err := c.WaitConverged(ctx); err != nil {
		fmt.Println(err)
		return
	}
	a1, _ := c.Node("worker-1").Active(cluster.SubDomainManager)
	a2, _ := c.Node("worker-2").Active(cluster.SubDomainManager)
	fmt.Println("split:", a1.Name, a2.Name)

	c.Heal()
	if err := c.WaitConverged(ctx); err != nil {
		fmt.Println(err)
		return
	}
	alive := len(c.Node("worker-1").View().Alive(""))
	fmt.Println("healed:", alive, "alive")
	// Output:
	// split: manager-1 manager-2
	// healed: 4 alive
}

// Restart a crashed node with the same name and address; its peers take
// it back.
func ExampleCluster_Restart() {
	c := clustertest.Start(nil, clustertest.Options{}, clustertest.Workers(3)...)
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	addr := c.Addr("worker-2")
	c.Crash("worker-2")
	n := c.Restart("worker-2")
	if err := c.WaitConverged(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n.Self().Addr == addr, len(c.Nodes()))
	// Output: true 3
}
