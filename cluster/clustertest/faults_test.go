package clustertest_test

// The fault suite: each test names the invariant it checks. By default
// the clusters are small and the loops short so the suite stays well
// inside CI's budget; CARBON_SOAK=1 runs bigger clusters for longer.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
	"github.com/carbonkit/carbon/role"
)

// size picks the short or the soak value.
func size(short, long int) int {
	if soak() {
		return long
	}
	return short
}

func waitConverged(t *testing.T, c *clustertest.Cluster, timeout time.Duration, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// Invariant: while the network is split in two, each side sees exactly its
// own nodes alive (and the other side failed) and agrees on its own active
// manager; after the heal every node sees every node alive and all agree
// on one active manager.
func TestPartitionEachSideSeesItselfThenOneViewAfterHeal(t *testing.T) {
	workers := size(4, 28)
	rounds := size(1, 3)
	specs := append(clustertest.Managers(2), clustertest.Workers(workers)...)
	specs = append(specs, clustertest.Observers(1)...)
	c := clustertest.Start(t, clustertest.Options{Logger: logger()}, specs...)
	half := workers / 2
	left := append([]string{"manager-1"}, names("worker", 1, half)...)
	right := append([]string{"manager-2", "observer-1"}, names("worker", half+1, workers)...)
	for r := range rounds {
		c.Partition(left, right)
		waitConverged(t, c, 20*time.Second, fmt.Sprintf("round %d, split", r))
		for _, side := range [][]string{left, right} {
			other := right
			if side[0] == right[0] {
				other = left
			}
			if !c.Sees(side, cluster.StatusAlive, side...) || !c.Sees(side, cluster.StatusFailed, other...) {
				t.Fatalf("round %d: side %v does not see itself alive and the other side failed:\n%s", r, side, c.Summary(side[0]))
			}
			a, ok := c.Node(side[0]).Active(cluster.SubDomainManager)
			if !ok {
				t.Fatalf("round %d: side %v has no active manager:\n%s", r, side, c.Summary(side[0]))
			}
			t.Logf("round %d: side of %s: active manager %s", r, side[0], a.Name)
		}
		c.Heal()
		waitConverged(t, c, 30*time.Second, fmt.Sprintf("round %d, healed", r))
		var active string
		for _, n := range c.Nodes() {
			a, ok := n.Active(cluster.SubDomainManager)
			if !ok || (active != "" && a.Name != active) {
				t.Fatalf("round %d: after heal %s sees active manager %q, others %q", r, n.Name(), a.Name, active)
			}
			active = a.Name
		}
		if n := writable(c); n != 1 {
			t.Fatalf("round %d: after heal %d managers are writable, want 1", r, n)
		}
	}
}

func writable(c *clustertest.Cluster) int {
	k := 0
	for _, n := range c.Nodes() {
		if n.Writable() {
			k++
		}
	}
	return k
}

// Invariant: with 20 % of packets lost, a live node is never seen failed
// by a peer for longer than memberlist takes to refute it (2 s here), and
// views still converge, after a crash and a restart too.
func TestPacketLoss20PercentNoFalseFailuresAndConvergence(t *testing.T) {
	const maxFalseFailure = 2 * time.Second
	window := time.Duration(size(3, 30)) * time.Second
	c := clustertest.Start(t, clustertest.Options{Logger: logger(), Seed: 42},
		append(clustertest.Managers(1), clustertest.Workers(size(5, 29))...)...)
	c.SetLoss(0.2)

	// Sample every view over the window; an episode is a (viewer, member)
	// pair seen not alive while both run.
	since := map[[2]string]time.Time{}
	episodes, longest := 0, time.Duration(0)
	end := time.Now().Add(window)
	for time.Now().Before(end) {
		now := time.Now()
		live := c.Names()
		for _, viewer := range live {
			n := c.Node(viewer)
			v := n.View()
			for _, name := range live {
				key := [2]string{viewer, name}
				m, ok := v.Member(name)
				if ok && m.Status == cluster.StatusAlive {
					if s, was := since[key]; was {
						longest = max(longest, now.Sub(s))
						delete(since, key)
					}
					continue
				}
				s, was := since[key]
				if !was {
					since[key] = now
					episodes++
					continue
				}
				if d := now.Sub(s); d > maxFalseFailure {
					t.Fatalf("under 20%% loss %s has seen live %s not alive for %v (> %v):\n%s", viewer, name, d, maxFalseFailure, c.Summary(viewer))
				}
			}
		}
		time.Sleep(20 * time.Millisecond) // the sampling period, not a wait for a condition
	}
	t.Logf("under 20%% loss over %v: %d false-failure episodes, longest %v", window, episodes, longest)
	waitConverged(t, c, 20*time.Second, "under loss")

	c.Crash("worker-2")
	c.Eventually("all to see worker-2 failed under loss", 20*time.Second, func() bool {
		return c.Sees(nil, cluster.StatusFailed, "worker-2")
	})
	c.Restart("worker-2")
	waitConverged(t, c, 20*time.Second, "restart under loss")
}

// Invariant: after each crash every live node sees the crashed one failed,
// and after each restart the views converge again, for workers and
// managers alike (the active manager fails over and views agree on it).
func TestCrashRestartLoopsConverge(t *testing.T) {
	for _, nw := range []clustertest.Network{clustertest.InMemory, clustertest.Loopback} {
		t.Run(nw.String(), func(t *testing.T) {
			if nw == clustertest.Loopback && !soak() {
				t.Skip("loopback crash loops run with CARBON_SOAK=1; the leak and domain tests cover crashes on loopback")
			}
			loops := size(2, 40)
			c := clustertest.Start(t, clustertest.Options{Network: nw, Logger: logger()},
				append(clustertest.Managers(2), clustertest.Workers(size(3, 18))...)...)
			all := c.Names()
			for i := range loops {
				victims := []string{all[(i*3)%len(all)]}
				if i%2 == 1 { // two at once every other loop
					if v := all[(i*3+1)%len(all)]; v != victims[0] {
						victims = append(victims, v)
					}
				}
				for _, v := range victims {
					c.Crash(v)
				}
				c.Eventually(fmt.Sprintf("loop %d: all to see %v failed", i, victims), 10*time.Second, func() bool {
					return c.Sees(nil, cluster.StatusFailed, victims...)
				})
				waitConverged(t, c, 10*time.Second, fmt.Sprintf("loop %d, after crashing %v", i, victims))
				for _, v := range victims {
					c.Restart(v)
				}
				waitConverged(t, c, 10*time.Second, fmt.Sprintf("loop %d, after restarting %v", i, victims))
				if n := writable(c); n != 1 {
					t.Fatalf("loop %d: %d managers writable, want 1", i, n)
				}
			}
		})
	}
}

// Invariant: a rolling restart (drain, leave, start again, one node after
// the other, managers included) converges after every step, and the
// manager sub-domain always has exactly one writable manager once it has.
func TestRollingRestartConverges(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Logger: logger()},
		append(clustertest.Managers(2), clustertest.Workers(size(3, 20))...)...)
	for round := range size(1, 3) {
		for _, name := range c.Names() {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			if err := c.Drain(ctx, name); err != nil {
				cancel()
				t.Fatalf("round %d: Drain(%s): %v", round, name, err)
			}
			waitConverged(t, c, 10*time.Second, fmt.Sprintf("round %d, %s draining", round, name))
			if err := c.Leave(ctx, name); err != nil {
				cancel()
				t.Fatalf("round %d: Leave(%s): %v", round, name, err)
			}
			cancel()
			// Leave returns once the intent is broadcast; give gossip its time.
			sctx, scancel := context.WithTimeout(t.Context(), 10*time.Second)
			err := c.WaitSees(sctx, nil, cluster.StatusLeft, name)
			scancel()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			c.Restart(name)
			waitConverged(t, c, 10*time.Second, fmt.Sprintf("round %d, %s restarted", round, name))
			if n := writable(c); n != 1 {
				t.Fatalf("round %d after restarting %s: %d managers writable, want 1", round, name, n)
			}
		}
	}
}

// Invariant: a node of another domain, or of this domain with another key
// or no key, never appears in any view of the cluster, and the cluster's
// nodes never appear in the other domain's views.
func TestForeignDomainAndWrongKeyNeverInAnyView(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, nw := range []clustertest.Network{clustertest.InMemory, clustertest.Loopback} {
		t.Run(nw.String(), func(t *testing.T) {
			a := clustertest.Start(t, clustertest.Options{Network: nw, Key: key, Logger: logger()},
				append(clustertest.Managers(1), clustertest.Workers(size(3, 12))...)...)
			bOpts := clustertest.Options{Network: nw, Domain: "other", Key: key, Logger: logger()}
			if nw == clustertest.InMemory {
				bOpts.SameNetwork = a
			}
			b := clustertest.Start(t, bOpts, clustertest.NodeSpec{Name: "other-m1", Role: role.Manager},
				clustertest.NodeSpec{Name: "other-w1", Role: role.Worker}, clustertest.NodeSpec{Name: "other-w2", Role: role.Worker})
			seedA := func(cfg *cluster.Config) { cfg.Seeds = a.Addrs() }

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if _, err := b.Join(ctx, clustertest.NodeSpec{Name: "foreign-1", Role: role.Worker, Config: seedA}); !errors.Is(err, cluster.ErrForeignDomain) {
				t.Errorf("a node of domain other joining with seeds of both domains: %v, want ErrForeignDomain", err)
			}
			for _, tc := range []struct {
				name string
				key  []byte
			}{{"wrongkey-1", []byte("fedcba9876543210")}, {"nokey-1", nil}} {
				_, err := a.Join(ctx, clustertest.NodeSpec{Name: tc.name, Role: role.Worker, Config: func(cfg *cluster.Config) {
					cfg.Key = tc.key
				}})
				if !errors.Is(err, cluster.ErrKeyMismatch) {
					t.Errorf("%s joining: %v, want ErrKeyMismatch", tc.name, err)
				}
			}

			// Sample every view for a few push-pull rounds (2 s each).
			end := time.Now().Add(time.Duration(size(3, 15)) * time.Second)
			for time.Now().Before(end) {
				for _, set := range []struct {
					c       *clustertest.Cluster
					domain  string
					outside []string
				}{{a, "clustertest", append(b.Names(), "foreign-1", "wrongkey-1", "nokey-1")}, {b, "other", append(a.Names(), "wrongkey-1", "nokey-1")}} {
					for _, n := range set.c.Nodes() {
						for _, m := range n.Members() {
							if m.Domain != set.domain {
								t.Fatalf("%s (domain %s) sees %s of domain %s", n.Name(), set.domain, m.Name, m.Domain)
							}
							for _, o := range set.outside {
								if m.Name == o {
									t.Fatalf("%s (domain %s) sees outsider %s", n.Name(), set.domain, o)
								}
							}
						}
					}
				}
				time.Sleep(50 * time.Millisecond) // the sampling period
			}
			for _, c := range []*clustertest.Cluster{a, b} {
				waitConverged(t, c, 20*time.Second, "domain "+c.Domain()+" after the intruders")
			}
		})
	}
}

// Invariant: once a cluster stops, none of the goroutines its nodes
// started (serf, memberlist, the network, our own) is left, after crashes,
// restarts, partitions, loss and latency.
func TestNoGoroutineLeaksAfterStop(t *testing.T) {
	for _, nw := range []clustertest.Network{clustertest.InMemory, clustertest.Loopback} {
		t.Run(nw.String(), func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			c := clustertest.Start(t, clustertest.Options{Network: nw, NoLeakCheck: true, Logger: logger()},
				append(clustertest.Managers(2), clustertest.Workers(4)...)...)
			if nw == clustertest.InMemory {
				c.SetLatency(time.Millisecond)
				c.SetLoss(0.1)
				c.Partition([]string{"manager-1", "worker-1"})
			}
			c.Crash("worker-2")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := c.Leave(ctx, "worker-3"); err != nil {
				t.Fatal(err)
			}
			c.Restart("worker-2")
			c.Node("worker-4").Watch(t.Context()) // a watcher left open must end with its node
			c.Stop()
			if err := findLeaks(before); err != nil {
				t.Fatalf("goroutines left after Stop: %v", err)
			}
		})
	}
}

// Invariant: a node learns of a member that joined right after it within
// seconds, even when no gossip gets through, by the state exchanges a node
// makes after its join (on LAN timings the periodic push/pull is 30 s
// away). Streams still work under total packet loss, so members are not
// marked failed meanwhile (memberlist falls back to TCP pings).
func TestJoinStateExchangesReachMembersGossipMissed(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{
		Config: func(cfg *cluster.Config) { cfg.Profile = cluster.ProfileLAN },
	})
	s := c.Add(clustertest.NodeSpec{Name: "seed", Role: role.Worker})
	x := c.Add(clustertest.NodeSpec{Name: "x", Role: role.Worker})
	c.SetLoss(1)                     // from here, no gossip packet arrives
	seed := []string{c.Addr("seed")} // not x: its join would tell x
	c.Add(clustertest.NodeSpec{Name: "y", Role: role.Worker, Config: func(cfg *cluster.Config) { cfg.Seeds = seed }})
	// y learned x from the seed's state at its join, the seed learned y;
	// x has only gossip (lost), its own exchanges after its join and
	// memberlist's periodic push/pull (30 s apart on LAN timings, the first
	// at a random point of the first 30 s).
	c.Eventually("x to see y alive with no gossip", 8*time.Second, func() bool {
		return c.Sees([]string{x.Name()}, cluster.StatusAlive, "y") && c.Sees([]string{s.Name()}, cluster.StatusAlive, "x", "y")
	})
}
