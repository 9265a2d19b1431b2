package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
	"github.com/carbonkit/carbon/internal/wait"
	"github.com/carbonkit/carbon/role"
)

// BenchmarkScale measures, for clusters of 10 to 200 nodes, how long the
// nodes take to all see each other alive (ms/converge) and how long all
// the others take to see a crashed node failed (ms/crash), with the heap
// each node costs (heap-B/node: live heap after GC once converged, divided
// by the nodes) and the CPU time the process spent converging
// (cpu-ms/converge, all threads: on two cores no run converges in less
// wall time than half of it). ms/joined is when every Join had returned:
// the rest of ms/converge is gossip.
//
// Every variant starts the same way, as a deployment does: three seed
// nodes one after the other (the second joins the first, the third the
// first two), then every other node at once, each joining the three
// seeds. ms/converge runs from the start of the first seed until every
// node sees all n alive at the same moment.
//
// The nodes after the seeds join at once, not one after the other: a
// serial join makes each newcomer gossip the whole member list it pulled
// from its seeds, a few alive messages then run out of retransmissions
// before reaching every node, and those stragglers learn of the missing
// members only at the next push/pull, so convergence would measure
// memberlist's push/pull timer, not gossip.
//
// Every iteration runs, with the same timing profile, raw serf on
// loopback UDP (serf.Create and Join) carrying the same tags as the SDK's
// nodes (rawserf, the baseline: both gossip the same bytes) and carrying
// none (rawserf-bare), the SDK on loopback UDP, the SDK on the in-memory
// network in real time (memnet), and the SDK on the in-memory network
// inside a synctest bubble (memnet-synctest, see runInBubble), starting
// with a different one each iteration (so none always runs first, or
// always last, on a machine left busy by the previous one). It reports
// each one's figures and the ratios loopback/rawserf (goal: within 5 %),
// loopback/rawserf-bare (what the SDK's tags cost on top),
// loopback/memnet and loopback/memnet-synctest (goal: the in-memory
// network at least 2x faster). All times are wall-clock times; the table
// also gives the protocol's own times (virtual conv/crash: the bubble's
// virtual clock, the wall clock elsewhere). A variant that does not
// converge within its timeout is logged with how far it got and its
// metrics are left out.
//
// CARBON_SCALE_VARIANTS=memnet,loopback (for example) runs only the named
// variants, and CARBON_SCALE_NOCRASH=1 stops each after convergence, for
// profiling.
//
// A run is long (200 nodes on LAN timings take minutes on two cores), so
// run it once per count:
//
//	go test -run='^$' -bench='BenchmarkScale/lan' -benchtime=1x -count=3 -timeout=60m ./cluster/clustertest
func BenchmarkScale(b *testing.B) {
	for _, prof := range []cluster.Profile{cluster.ProfileLAN, cluster.ProfileLocal} {
		b.Run(prof.String(), func(b *testing.B) {
			for _, n := range []int{10, 50, 100, 200} {
				b.Run(strconv.Itoa(n), func(b *testing.B) { benchScale(b, prof, n) })
			}
		})
	}
}

// rotation makes successive iterations start with a different variant.
var rotation int

func benchScale(b *testing.B, prof cluster.Profile, n int) {
	variants := []struct {
		name string
		run  func() scaleResult
	}{
		{"rawserf", func() scaleResult { return runRawSerf(b, prof, n, workerTags) }},
		{"rawserf-bare", func() scaleResult { return runRawSerf(b, prof, n, nil) }},
		{"loopback", func() scaleResult { return runSDK(b, clustertest.Loopback, prof, n) }},
		{"memnet", func() scaleResult { return runSDK(b, clustertest.InMemory, prof, n) }},
		{"memnet-synctest", func() scaleResult { return runInBubble(b, prof, n) }},
	}
	if only := os.Getenv("CARBON_SCALE_VARIANTS"); only != "" {
		// For profiling one variant: a comma-separated list of names.
		keep := strings.Split(only, ",")
		variants = slices.DeleteFunc(variants, func(v struct {
			name string
			run  func() scaleResult
		}) bool {
			return !slices.Contains(keep, v.name)
		})
	}
	res := map[string]scaleResult{}
	for range b.N {
		first := rotation % len(variants)
		rotation++
		for k := range variants {
			v := variants[(first+k)%len(variants)]
			settle()
			res[v.name] = v.run()
		}
	}
	b.StopTimer()
	settle() // the last variant's memberlist timers must not trip TestMain's leak check
	table := fmt.Sprintf("\n%-15s %6s %10s %12s %16s %12s %14s %20s %s", "network", "nodes", "joined ms", "converge ms", "cpu ms converge", "crash ms", "heap B/node", "virtual conv/crash", "note")
	for _, v := range variants {
		r := res[v.name]
		if r.Note == "" {
			b.ReportMetric(ms(r.Joined), v.name+"-ms/joined")
			b.ReportMetric(ms(r.Converge), v.name+"-ms/converge")
			b.ReportMetric(ms(r.CPUConverge), v.name+"-cpu-ms/converge")
			b.ReportMetric(ms(r.Crash), v.name+"-ms/crash")
			b.ReportMetric(r.HeapPerNode, v.name+"-heap-B/node")
		}
		table += fmt.Sprintf("\n%-15s %6d %10.0f %12.0f %16.0f %12.0f %14.0f %20s %s", v.name, n, ms(r.Joined), ms(r.Converge), ms(r.CPUConverge), ms(r.Crash), r.HeapPerNode,
			fmt.Sprintf("%.0f/%.0f", ms(r.VirtualConverge), ms(r.VirtualCrash)), r.Note)
	}
	done := func(names ...string) bool {
		for _, name := range names {
			if r, ok := res[name]; !ok || r.Note != "" {
				return false
			}
		}
		return true
	}
	raw, bare, sdk, mem := res["rawserf"], res["rawserf-bare"], res["loopback"], res["memnet"]
	if done("rawserf", "loopback") {
		b.ReportMetric(ratio(sdk.Converge, raw.Converge), "loopback/rawserf-converge")
		b.ReportMetric(ratio(sdk.Crash, raw.Crash), "loopback/rawserf-crash")
	}
	if done("rawserf-bare", "loopback") {
		b.ReportMetric(ratio(sdk.Converge, bare.Converge), "loopback/rawserf-bare-converge")
	}
	if done("loopback", "memnet") {
		b.ReportMetric(ratio(sdk.Converge, mem.Converge), "loopback/memnet-converge")
	}
	if done("loopback", "memnet-synctest") {
		b.ReportMetric(ratio(sdk.Converge, res["memnet-synctest"].Converge), "loopback/memnet-synctest-converge")
		b.ReportMetric(ratio(sdk.Crash, res["memnet-synctest"].Crash), "loopback/memnet-synctest-crash")
		b.ReportMetric(ratio(sdk.CPUConverge, res["memnet-synctest"].CPUConverge), "loopback/memnet-synctest-cpu")
	}
	b.ReportMetric(0, "ns/op") // wall time per op says nothing here
	b.Log(table)
}

type scaleResult struct {
	Joined          time.Duration // until every Join returned
	Converge, Crash time.Duration
	HeapPerNode     float64
	Note            string // why the figures are missing, if they are
	// The protocol's own time for converge and crash: the same as those
	// outside a synctest bubble, the bubble's virtual time inside one.
	VirtualConverge, VirtualCrash time.Duration
	// CPUConverge is the CPU time (all threads) the process spent until
	// convergence: on two cores a run cannot converge in less wall time
	// than half of it.
	CPUConverge time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// settle waits (up to 20 s) until the goroutines of the previous variant
// are gone (memberlist's timers outlive Shutdown by up to a probe
// timeout), so that one variant does not pay for the last one's tail.
func settle() {
	base := runtime.NumGoroutine()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling period
		g := runtime.NumGoroutine()
		if g <= 20 || g >= base && base <= 20 {
			break
		}
		base = g
	}
	runtime.GC()
}

// scaleTimeout bounds each wait of the benchmark.
func scaleTimeout(n int) time.Duration { return 60*time.Second + time.Duration(n)*500*time.Millisecond }

// errTimeout is returned by poll when its condition did not hold in time.
var errTimeout = errors.New("timed out")

// poll checks cond every 20 ms until it holds or timeout passes.
func poll(timeout time.Duration, cond func() bool) error {
	if wait.For(timeout, 20*time.Millisecond, cond) != nil {
		return errTimeout
	}
	return nil
}

// startAll starts n nodes the way every variant does: seeds 0, 1 and 2
// one after the other (each joining the earlier ones), then all the
// others at once, each joining the three seeds. start returns the node's
// address.
func startAll(n int, start func(i int, seeds []string) (string, error)) error {
	var seeds []string
	for i := range min(3, n) {
		addr, err := start(i, seeds)
		if err != nil {
			return err
		}
		seeds = append(seeds, addr)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 3; i < n; i++ {
		wg.Go(func() { _, errs[i] = start(i, seeds) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// progress says how far a convergence got: how many of the n views are
// complete, and the fewest alive members in a view.
// awaitAll polls until alive(i) == n for every node i, or the timeout for
// n nodes passes; then it returns how far the views got ("" when they all
// completed). The poll stops at the first incomplete view.
func awaitAll(n int, alive func(i int) int) string {
	err := poll(scaleTimeout(n), func() bool {
		for i := range n {
			if alive(i) != n {
				return false
			}
		}
		return true
	})
	if err == nil {
		return ""
	}
	counts := make([]int, n)
	for i := range counts {
		counts[i] = alive(i)
	}
	return progress(n, counts)
}

func progress(n int, alive []int) string {
	full, fewest := 0, n
	for _, a := range alive {
		if a == n {
			full++
		}
		fewest = min(fewest, a)
	}
	return fmt.Sprintf("not converged after the timeout: %d of %d views complete, the poorest sees %d alive", full, n, fewest)
}

func runSDK(tb testing.TB, nw clustertest.Network, prof cluster.Profile, n int) scaleResult {
	tb.Helper()
	before := liveHeap()
	start := startWatch()
	c := clustertest.New(tb, clustertest.Options{
		Network:     nw,
		NoLeakCheck: true, // TestMain checks at the end
		Timeout:     scaleTimeout(n),
		Config:      func(cfg *cluster.Config) { cfg.Profile = prof },
	})
	defer c.Stop()
	names := make([]string, n)
	for i := range names {
		names[i] = "worker-" + strconv.Itoa(i+1)
	}
	err := startAll(n, func(i int, seeds []string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), scaleTimeout(n))
		defer cancel()
		nd, err := c.Join(ctx, clustertest.NodeSpec{
			Name: names[i],
			Role: role.Worker,
			// Join's default seeds are the three oldest running nodes,
			// which under concurrent joins may be anyone: pin them.
			Config: func(cfg *cluster.Config) { cfg.Seeds = seeds },
		})
		if err != nil {
			return "", err
		}
		return nd.Self().Addr, nil
	})
	if err != nil {
		tb.Fatalf("%d %s nodes: %v", n, nw, err)
	}
	joined, _, _ := start.elapsed()
	nodes := c.Nodes()
	// Count without copying: View().Members() would copy n members per
	// node on every poll.
	var r scaleResult
	if r.Note = awaitAll(n, func(i int) int {
		v := nodes[i].View()
		a := 0
		if v.Len() >= n {
			for _, name := range names {
				if m, ok := v.Member(name); ok && m.Status == cluster.StatusAlive {
					a++
				}
			}
		}
		return a
	}); r.Note != "" {
		tb.Logf("%d %s nodes: %s", n, nw, r.Note)
		return r
	}
	r.Joined = joined
	r.Converge, r.VirtualConverge, r.CPUConverge = start.elapsed()
	r.HeapPerNode = float64(int64(liveHeap())-int64(before)) / float64(n)

	if os.Getenv("CARBON_SCALE_NOCRASH") != "" {
		return r
	}
	victim := names[n-1]
	var others []*cluster.Node // c.Nodes is in join order, not name order
	for _, nd := range nodes {
		if nd.Name() != victim {
			others = append(others, nd)
		}
	}
	start = startWatch()
	c.Crash(victim)
	if err := poll(scaleTimeout(n), func() bool {
		for _, nd := range others {
			if m, ok := nd.View().Member(victim); ok && m.Status != cluster.StatusFailed {
				return false
			}
		}
		return true
	}); err != nil {
		r.Note = "crash not seen by all after the timeout"
		tb.Logf("%d %s nodes: %s", n, nw, r.Note)
		return r
	}
	r.Crash, r.VirtualCrash, _ = start.elapsed()
	return r
}
