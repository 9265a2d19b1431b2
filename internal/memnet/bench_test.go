package memnet

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// convergeMs records the memnet figures of BenchmarkConverge, so that the
// udp runs can report the speed-up.
var convergeMs sync.Map // N -> float64

// BenchmarkConverge measures how long N memberlist nodes, each joining
// node 0, take until every node sees all N alive: over memnet, and over
// memberlist's NetTransport on loopback UDP/TCP, with the same fast
// timings (fastConfig, slowdown 1 unless built with -race). The clock
// runs from the creation of the first node to convergence; shut-down is
// not timed.
//
//	go test -run '^$' -bench Converge -benchtime 3x ./internal/memnet/
func BenchmarkConverge(b *testing.B) {
	sizes := []int{10, 50, 100, 200}
	b.Run("memnet", func(b *testing.B) {
		for _, n := range sizes {
			b.Run(strconv.Itoa(n), func(b *testing.B) {
				ms := benchConverge(b, n, newMemnetNode)
				convergeMs.Store(n, ms)
			})
		}
	})
	b.Run("udp", func(b *testing.B) {
		for _, n := range sizes {
			b.Run(strconv.Itoa(n), func(b *testing.B) {
				ms := benchConverge(b, n, newUDPNode)
				if mem, ok := convergeMs.Load(n); ok {
					b.ReportMetric(ms/mem.(float64), "x-memnet-speedup")
				}
			})
		}
	})
}

// nodeMaker creates node i of a benchmark cluster.
type nodeMaker func(net *Network, i int) (*memberlist.Memberlist, error)

func newMemnetNode(n *Network, i int) (*memberlist.Memberlist, error) {
	tr, err := n.NewTransport("")
	if err != nil {
		return nil, err
	}
	return memberlist.Create(memConfig(fmt.Sprintf("node-%03d", i), tr))
}

func newUDPNode(_ *Network, i int) (*memberlist.Memberlist, error) {
	c := fastConfig(fmt.Sprintf("node-%03d", i))
	c.BindAddr, c.BindPort = "127.0.0.1", 0 // memberlist picks a free port for UDP and TCP
	c.AdvertisePort = 0
	return memberlist.Create(c)
}

// benchConverge runs b.N convergences of count nodes and reports the mean
// in ms/converge, which it returns.
func benchConverge(b *testing.B, count int, mk nodeMaker) float64 {
	var total time.Duration
	for b.Loop() {
		total += convergeOnce(b, count, mk)
	}
	ms := float64(total.Milliseconds()) / float64(b.N)
	b.ReportMetric(ms, "ms/converge")
	b.ReportMetric(0, "ns/op") // the wall time per op is setup-heavy: ms/converge is the figure
	return ms
}

func convergeOnce(b *testing.B, count int, mk nodeMaker) time.Duration {
	n := New()
	c := &cluster{tb: b, net: n}
	defer func() {
		for _, m := range c.nodes {
			_ = m.Shutdown()
		}
		_ = n.Close()
	}()
	start := time.Now()
	for i := range count {
		m, err := mk(n, i)
		if err != nil {
			b.Fatal(err)
		}
		c.nodes = append(c.nodes, m)
	}
	c.joinAll(0, c.all()...)
	all := c.all()
	deadline := start.Add(convergeLimit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !c.sees(all, all) {
		if time.Now().After(deadline) {
			// Not a bug in the code under test: report it and go on to
			// the other sizes.
			b.Skipf("%d nodes did not converge within %v: %s", count, convergeLimit, c.summary(all))
		}
		<-tick.C
	}
	return time.Since(start)
}

// convergeLimit bounds one convergence in BenchmarkConverge.
const convergeLimit = time.Minute
