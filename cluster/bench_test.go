package cluster

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/logbridge"
	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
)

// BenchmarkEventToView measures the time from serf handing an event to
// the Node until a watcher holds the updated view, against a raw serf
// consumer reading the same event from a channel (what an application on
// raw serf gets). The difference is the SDK's overhead: decoding tags,
// building the immutable view, the election, and the fan-out. The view
// holds 50 members.
func BenchmarkEventToView(b *testing.B) {
	const members = 50
	// Event i updates member i%50 to serving state i/50%3, so that
	// consecutive events always change the view.
	ev := func(i int) serf.MemberEvent {
		ms := make([]serf.Member, 1)
		ms[0] = serf.Member{
			Name: "peer-" + strconv.Itoa(i%members), Addr: net.IPv4(127, 0, 0, 1), Port: 7946,
			Status: serf.StatusAlive,
			Tags: map[string]string{
				tags.KeyDomain: "bench", tags.KeySubDomain: "worker", tags.KeyRole: tags.RoleWorker,
				tags.KeyState: strconv.Itoa(i / members % 3), tags.KeyEndpoints: "grpc=%3A9443",
			},
		}
		return serf.MemberEvent{Type: serf.EventMemberUpdate, Members: ms}
	}

	b.Run("serf", func(b *testing.B) {
		ch := make(chan serf.Event, 4096)
		got := make(chan struct{})
		go func() {
			for range ch {
				got <- struct{}{}
			}
		}()
		b.ResetTimer()
		for i := range b.N {
			ch <- ev(i)
			<-got
		}
		b.StopTimer()
		close(ch)
	})

	b.Run("sdk", func(b *testing.B) {
		n := start(b, local("bench", role.Worker))
		for i := range members {
			n.events <- ev(i) // fill the view
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := n.Watch(ctx)
		waitFor(b, 5*time.Second, "50 members", func() bool { return n.View().Len() == members+1 })
		for len(w) > 0 {
			<-w
		}
		b.ResetTimer()
		for i := range b.N {
			// State cycles 0,1,2 per member so every event changes the view.
			n.events <- ev(i + members)
			<-w
		}
	})
}

// rawSerf starts a raw serf node with the same timings and transport the
// SDK uses, for a baseline.
func rawSerf(tb testing.TB, p Profile, name string) *serf.Serf {
	sc := serfConfig(p)
	sc.NodeName = name
	sc.MemberlistConfig.Name = name
	sc.Logger = logbridge.New(quiet, "serf")
	sc.MemberlistConfig.Logger = logbridge.New(quiet, "memberlist")
	sc.LogOutput, sc.MemberlistConfig.LogOutput = nil, nil
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: sc.MemberlistConfig.Logger})
	if err != nil {
		tb.Fatal(err)
	}
	sc.MemberlistConfig.Transport = nt
	sc.MemberlistConfig.BindAddr, sc.MemberlistConfig.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
	sc.MemberlistConfig.BindPort, sc.MemberlistConfig.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	ch := make(chan serf.Event, 4096)
	sc.EventCh = ch
	s, err := serf.Create(sc)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ch:
			case <-s.ShutdownCh():
				return
			}
		}
	}()
	tb.Cleanup(func() { s.Shutdown(); <-done })
	return s
}

func rawAlive(s *serf.Serf) int {
	c := 0
	for _, m := range s.Members() {
		if m.Status == serf.StatusAlive {
			c++
		}
	}
	return c
}

// BenchmarkConvergence measures the time for N nodes on loopback to start,
// join the first and all see N alive members, with the SDK and with raw
// serf on the same timings (ProfileLocal), interleaved in one run (the
// order alternates so neither always runs on a warmer machine).
// ratio = SDK / raw serf of the medians.
func BenchmarkConvergence(b *testing.B) {
	for _, size := range []int{10, 50} {
		b.Run(fmt.Sprintf("n=%d", size), func(b *testing.B) {
			var sdk, raw []time.Duration
			for i := range b.N {
				if i%2 == 0 {
					raw = append(raw, convergeRaw(b, size, i))
					sdk = append(sdk, convergeSDK(b, size, i))
				} else {
					sdk = append(sdk, convergeSDK(b, size, i))
					raw = append(raw, convergeRaw(b, size, i))
				}
			}
			ms, mr := median(sdk), median(raw)
			b.ReportMetric(float64(ms.Milliseconds()), "sdk-ms")
			b.ReportMetric(float64(mr.Milliseconds()), "serf-ms")
			b.ReportMetric(float64(ms)/float64(mr), "ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func convergeRaw(b *testing.B, size, round int) time.Duration {
	b.Helper()
	var nodes []*serf.Serf
	t0 := time.Now()
	for i := range size {
		s := rawSerf(b, ProfileLocal, fmt.Sprintf("raw-%d-%d", round, i))
		if i > 0 {
			first := nodes[0].LocalMember()
			if _, err := s.Join([]string{net.JoinHostPort(first.Addr.String(), strconv.Itoa(int(first.Port)))}, true); err != nil {
				b.Fatal(err)
			}
		}
		nodes = append(nodes, s)
	}
	waitFor(b, 120*time.Second, "raw serf converged", func() bool {
		for _, s := range nodes {
			if rawAlive(s) != size {
				return false
			}
		}
		return true
	})
	d := time.Since(t0)
	for _, s := range nodes {
		s.Shutdown()
	}
	return d
}

func convergeSDK(b *testing.B, size, round int) time.Duration {
	b.Helper()
	var nodes []*Node
	t0 := time.Now()
	for i := range size {
		cfg := local("bench", role.Worker)
		cfg.NodeName = fmt.Sprintf("sdk-%d-%d", round, i)
		if i > 0 {
			cfg = withSeed(cfg, nodes[0])
		}
		nodes = append(nodes, start(b, cfg))
	}
	waitFor(b, 120*time.Second, "sdk converged", func() bool {
		for _, n := range nodes {
			c := 0
			for _, m := range n.View().members {
				if m.Status == StatusAlive {
					c++
				}
			}
			if c != size {
				return false
			}
		}
		return true
	})
	d := time.Since(t0)
	for _, n := range nodes {
		n.Close()
	}
	return d
}
