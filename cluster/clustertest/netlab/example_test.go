//go:build linux

package netlab_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/carbonkit/carbon/cluster/clustertest/netlab"
)

// Run starts pattern 3 from the example binaries in namespaces of its own,
// injects one fault of each kind from the seed, and checks the history.
func ExampleRun() {
	if err := netlab.Require(); err != nil {
		fmt.Println(err) // not root, or no ip command
		return
	}
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "netlab-")
	bins, err := netlab.Build(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	res, err := netlab.Run(ctx, netlab.Options{Pattern: 3, Seed: 42, Bin: bins, Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Summary)
	for _, v := range res.Report.Violations {
		fmt.Println("broken:", v)
	}
}

// Check on a history where a manager frozen by SIGSTOP acknowledged a
// write at its old epoch after its stand-by took over.
func ExampleCheck() {
	t := func(ms int) time.Time { return time.Date(2026, 1, 1, 0, 0, 0, ms*1e6, time.UTC) }
	write := func(node, key string, epoch uint64, from, to int) netlab.Op {
		return netlab.Op{Kind: netlab.OpWrite, Node: node, Key: key, Value: "v", Invoke: t(from), Complete: t(to), Result: netlab.OK, Epoch: epoch}
	}
	all := map[string]string{"a": "v", "b": "v", "c": "v"}
	h := netlab.History{
		Roles: map[string]string{"m1": "manager", "m2": "manager"},
		Ops:   []netlab.Op{write("m1", "a", 1, 0, 5), write("m2", "b", 2, 1500, 1505), write("m1", "c", 1, 3100, 3105)},
		Faults: []netlab.FaultRecord{{Fault: netlab.Fault{Kind: netlab.FaultPause, Target: "m1", Duration: 3 * time.Second},
			Start: t(10), End: t(3010)}},
		FaultsEnd: t(3010),
		Finals:    []netlab.Final{{Time: t(3500), Node: "m2", Writable: true, Catalog: all}, {Time: t(3500), Node: "m1", Catalog: all}},
	}
	for _, v := range netlab.Check(h, netlab.CheckOptions{}).Violations {
		fmt.Println(v.Promise)
	}
	// Output:
	// no-stale-ack
}
