package clustertest_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/internal/timing"
)

// The baseline of BenchmarkScale: raw serf, started and measured the way
// runSDK starts and measures the SDK's nodes.

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

// workerTags are the tags every SDK node of the benchmark gossips (a
// worker of clustertest's default domain, serving, in the default
// sub-domain): the raw serf baseline carries the same bytes, so that both
// gossip the same amount. (rawserf-bare carries none.)
var workerTags = map[string]string{
	tags.KeyDomain:    "clustertest",
	tags.KeyRole:      tags.RoleWorker,
	tags.KeyState:     tags.StateServing,
	tags.KeySubDomain: "worker",
}

func startRaw(prof cluster.Profile, name string, seeds []string, tags map[string]string) (*rawNode, error) {
	quiet := log.New(io.Discard, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: quiet})
	if err != nil {
		return nil, err
	}
	c := rawSerfConfig(prof)
	c.NodeName, c.MemberlistConfig.Name = name, name
	c.Tags = tags
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
		return nil, err
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
			r.close()
			return nil, fmt.Errorf("raw serf join %s: %w", name, err)
		}
	}
	return r, nil
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

func runRawSerf(b *testing.B, prof cluster.Profile, n int, tags map[string]string) scaleResult {
	b.Helper()
	before := liveHeap()
	start := startWatch()
	nodes := make([]*rawNode, n)
	defer func() {
		for _, r := range nodes {
			if r != nil {
				r.close()
			}
		}
	}()
	err := startAll(n, func(i int, seeds []string) (string, error) {
		// Names as long as the SDK's ("worker-N").
		r, err := startRaw(prof, fmt.Sprintf("rawser-%d", i+1), seeds, tags)
		if err != nil {
			return "", err
		}
		nodes[i] = r
		return r.addr, nil
	})
	if err != nil {
		b.Fatalf("%d raw serf nodes: %v", n, err)
	}
	joined, _, _ := start.elapsed()
	var res scaleResult
	if res.Note = awaitAll(n, func(i int) int {
		// Members is serf's only view and copies; the poll stops at the
		// first incomplete view, so few are copied until the end.
		a := 0
		for _, m := range nodes[i].s.Members() {
			if m.Status == serf.StatusAlive {
				a++
			}
		}
		return a
	}); res.Note != "" {
		b.Logf("%d raw serf nodes: %s", n, res.Note)
		return res
	}
	res.Joined = joined
	res.Converge, res.VirtualConverge, res.CPUConverge = start.elapsed()
	res.HeapPerNode = float64(int64(liveHeap())-int64(before)) / float64(n)

	victim := nodes[n-1]
	name := victim.s.LocalMember().Name
	start = startWatch()
	victim.close()
	others := nodes[:n-1]
	if err := poll(scaleTimeout(n), func() bool {
		for _, r := range others {
			for _, m := range r.s.Members() {
				if m.Name == name && m.Status != serf.StatusFailed {
					return false
				}
			}
		}
		return true
	}); err != nil {
		res.Note = "crash not seen by all after the timeout"
		b.Logf("%d raw serf nodes: %s", n, res.Note)
		return res
	}
	res.Crash, res.VirtualCrash, _ = start.elapsed()
	return res
}
