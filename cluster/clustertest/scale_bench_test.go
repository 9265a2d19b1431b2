package clustertest_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
	"github.com/carbonkit/carbon/internal/timing"
)

// BenchmarkScale measures, for clusters of 10 to 200 nodes, how long the
// nodes take to all see each other alive (ms/converge: from the first
// Join to the last view complete; nodes join one after the other, each
// through the three oldest) and how long all the others take to see a
// crashed node failed (ms/crash), with the heap each node costs
// (heap-B/node, live heap after GC once converged, divided by the nodes).
//
// Every iteration runs, in this order and with the same timing profile:
// raw serf on loopback UDP (serf.Create and Join, the baseline), the SDK
// on loopback UDP, and the SDK on the in-memory network. It reports each
// one's figures and the ratios sdk-loopback/rawserf (goal: within 5 %)
// and sdk-loopback/memnet (goal: memnet at least 2x faster).
//
// A run is long (200 nodes on LAN timings take tens of seconds), so run
// it once per count:
//
//	go test -run='^$' -bench='BenchmarkScale/lan' -benchtime=1x -count=3 -timeout=60m ./cluster/clustertest
func BenchmarkScale(b *testing.B) {
	for _, prof := range []cluster.Profile{cluster.ProfileLAN, cluster.ProfileLocal} {
		b.Run(prof.String(), func(b *testing.B) {
			for _, n := range []int{10, 50, 100, 200} {
				b.Run(strconv.Itoa(n), func(b *testing.B) {
					var raw, sdk, mem scaleResult
					for range b.N {
						raw = runRawSerf(b, prof, n)
						sdk = runSDK(b, clustertest.Loopback, prof, n)
						mem = runSDK(b, clustertest.InMemory, prof, n)
					}
					for _, r := range []struct {
						name string
						r    scaleResult
					}{{"rawserf", raw}, {"loopback", sdk}, {"memnet", mem}} {
						b.ReportMetric(ms(r.r.converge), r.name+"-ms/converge")
						b.ReportMetric(ms(r.r.crash), r.name+"-ms/crash")
						b.ReportMetric(r.r.heapPerNode, r.name+"-heap-B/node")
					}
					b.ReportMetric(ratio(sdk.converge, raw.converge), "loopback/rawserf-converge")
					b.ReportMetric(ratio(sdk.crash, raw.crash), "loopback/rawserf-crash")
					b.ReportMetric(ratio(sdk.converge, mem.converge), "loopback/memnet-converge")
					b.Logf("\n%-9s %6s %12s %12s %14s\n%-9s %6d %12.0f %12.0f %14.0f\n%-9s %6d %12.0f %12.0f %14.0f\n%-9s %6d %12.0f %12.0f %14.0f",
						"network", "nodes", "converge ms", "crash ms", "heap B/node",
						"rawserf", n, ms(raw.converge), ms(raw.crash), raw.heapPerNode,
						"loopback", n, ms(sdk.converge), ms(sdk.crash), sdk.heapPerNode,
						"memnet", n, ms(mem.converge), ms(mem.crash), mem.heapPerNode)
				})
			}
		})
	}
}

type scaleResult struct {
	converge, crash time.Duration
	heapPerNode     float64
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

// scaleTimeout bounds each wait of the benchmark.
func scaleTimeout(n int) time.Duration { return 60*time.Second + time.Duration(n)*500*time.Millisecond }

// poll checks cond every 20 ms until it holds; it fails b after timeout.
func poll(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling period
	}
}

func runSDK(b *testing.B, nw clustertest.Network, prof cluster.Profile, n int) scaleResult {
	b.Helper()
	before := liveHeap()
	start := time.Now()
	c := clustertest.New(b, clustertest.Options{
		Network:     nw,
		NoLeakCheck: true, // TestMain checks at the end
		Timeout:     scaleTimeout(n),
		Config:      func(cfg *cluster.Config) { cfg.Profile = prof },
	})
	defer c.Stop()
	for _, s := range clustertest.Workers(n) {
		c.Add(s)
	}
	nodes := c.Nodes()
	poll(b, scaleTimeout(n), fmt.Sprintf("%d %s nodes to converge", n, nw), func() bool {
		for _, nd := range nodes {
			alive := 0
			for _, m := range nd.View().Members() {
				if m.Status == cluster.StatusAlive {
					alive++
				}
			}
			if alive != n {
				return false
			}
		}
		return true
	})
	var r scaleResult
	r.converge = time.Since(start)
	r.heapPerNode = float64(int64(liveHeap())-int64(before)) / float64(n)

	victim := nodes[n-1].Name()
	others := nodes[:n-1]
	start = time.Now()
	c.Crash(victim)
	poll(b, scaleTimeout(n), "all to see "+victim+" failed", func() bool {
		for _, nd := range others {
			if m, ok := nd.View().Member(victim); ok && m.Status != cluster.StatusFailed {
				return false
			}
		}
		return true
	})
	r.crash = time.Since(start)
	return r
}

// rawSerfConfig is serf's config for a profile, with the timings package
// cluster uses for it, so the baseline is comparable.
func rawSerfConfig(prof cluster.Profile) *serf.Config {
	return timing.Serf(timing.Profile(prof))
}

type rawNode struct {
	s    *serf.Serf
	addr string
	stop chan struct{}
	done chan struct{}
}

func startRaw(b *testing.B, prof cluster.Profile, name string, seeds []string) *rawNode {
	b.Helper()
	quiet := log.New(io.Discard, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	c := rawSerfConfig(prof)
	c.NodeName, c.MemberlistConfig.Name = name, name
	c.Logger, c.MemberlistConfig.Logger = quiet, quiet
	c.MemberlistConfig.Transport = nt
	c.MemberlistConfig.BindAddr = "127.0.0.1"
	c.MemberlistConfig.BindPort, c.MemberlistConfig.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	c.MemberlistConfig.AdvertiseAddr = "127.0.0.1"
	// A user of raw serf reads its events; drain them as package cluster does.
	events := make(chan serf.Event, 4096)
	c.EventCh = events
	s, err := serf.Create(c)
	if err != nil {
		nt.Shutdown()
		b.Fatal(err)
	}
	r := &rawNode{s: s, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(nt.GetAutoBindPort())), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-events:
			case <-r.stop:
				return
			}
		}
	}()
	if len(seeds) > 0 {
		if _, err := s.Join(seeds, true); err != nil {
			b.Fatalf("raw serf join: %v", err)
		}
	}
	return r
}

func (r *rawNode) close() {
	r.s.Shutdown()
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func runRawSerf(b *testing.B, prof cluster.Profile, n int) scaleResult {
	b.Helper()
	before := liveHeap()
	start := time.Now()
	nodes := make([]*rawNode, 0, n)
	defer func() {
		for _, r := range nodes {
			r.close()
		}
	}()
	for i := range n {
		var seeds []string
		for _, r := range nodes[:min(3, len(nodes))] {
			seeds = append(seeds, r.addr)
		}
		nodes = append(nodes, startRaw(b, prof, fmt.Sprintf("raw-%d", i+1), seeds))
	}
	poll(b, scaleTimeout(n), fmt.Sprintf("%d raw serf nodes to converge", n), func() bool {
		for _, r := range nodes {
			alive := 0
			for _, m := range r.s.Members() {
				if m.Status == serf.StatusAlive {
					alive++
				}
			}
			if alive != n {
				return false
			}
		}
		return true
	})
	var res scaleResult
	res.converge = time.Since(start)
	res.heapPerNode = float64(int64(liveHeap())-int64(before)) / float64(n)

	victim := nodes[n-1]
	name := victim.s.LocalMember().Name
	start = time.Now()
	victim.close()
	others := nodes[:n-1]
	poll(b, scaleTimeout(n), "all to see "+name+" failed", func() bool {
		for _, r := range others {
			for _, m := range r.s.Members() {
				if m.Name == name && m.Status != serf.StatusFailed {
					return false
				}
			}
		}
		return true
	})
	res.crash = time.Since(start)
	return res
}
