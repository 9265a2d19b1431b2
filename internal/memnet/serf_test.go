package memnet

import (
	"fmt"
	"io"
	"log"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
)

// TestSerf runs serf over the network: join, a crash seen as failed, the
// restart healed by serf's own reconnect loop (no explicit join), and a
// graceful leave.
func TestSerf(t *testing.T) {
	t.Parallel()
	n := New(WithSeed(8))
	defer n.Close()
	const count = 4
	nodes := make([]*serf.Serf, count)
	addrs := make([]string, count)
	for i := range nodes {
		tr, err := n.NewTransport("")
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("serf-%d", i)
		cfg := serf.DefaultConfig()
		cfg.NodeName = name
		cfg.MemberlistConfig = memConfig(name, tr)
		cfg.Logger = log.New(io.Discard, "", 0)
		cfg.DisableCoordinates = true
		cfg.ReconnectInterval = slowdown * 200 * time.Millisecond
		cfg.ReapInterval = slowdown * time.Second
		s, err := serf.Create(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Shutdown() })
		nodes[i], addrs[i] = s, tr.Addr()
	}
	for i := 1; i < count; i++ {
		if _, err := nodes[i].Join([]string{addrs[0]}, true); err != nil {
			t.Fatal(err)
		}
	}
	// statuses returns what node i thinks of every member, by name.
	statuses := func(i int) map[string]serf.MemberStatus {
		st := make(map[string]serf.MemberStatus)
		for _, m := range nodes[i].Members() {
			st[m.Name] = m.Status
		}
		return st
	}
	expect := func(what string, viewers []int, want map[string]serf.MemberStatus) {
		t.Helper()
		waitFor(t, slowdown*10*time.Second, what, func() bool {
			for _, v := range viewers {
				got := statuses(v)
				for name, w := range want {
					if got[name] != w {
						return false
					}
				}
			}
			return true
		})
	}
	alive := map[string]serf.MemberStatus{
		"serf-0": serf.StatusAlive, "serf-1": serf.StatusAlive,
		"serf-2": serf.StatusAlive, "serf-3": serf.StatusAlive,
	}
	expect("all alive", []int{0, 1, 2, 3}, alive)

	n.Crash(addrs[3])
	expect("serf-3 failed", []int{0, 1, 2}, map[string]serf.MemberStatus{"serf-3": serf.StatusFailed})
	n.Restart(addrs[3])
	expect("serf-3 reconnected", []int{0, 1, 2, 3}, alive)

	if err := nodes[2].Leave(); err != nil {
		t.Fatal(err)
	}
	expect("serf-2 left", []int{0, 1, 3}, map[string]serf.MemberStatus{"serf-2": serf.StatusLeft})
}
