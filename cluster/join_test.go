package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/memnet"
	"github.com/carbonkit/carbon/role"
)

// Nodes may start in any order: each one whose seeds are not up yet comes
// up alone and retries until it has contact, and the domain still ends as
// one cluster.
func TestReverseOrderStartConverges(t *testing.T) {
	const n = 4
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = "127.0.0.1:" + strconv.Itoa(freePort(t))
	}
	nodes := make([]*Node, n)
	for i := n - 1; i >= 0; i-- {
		cfg := local("carbon.test", role.Worker)
		cfg.NodeName = fmt.Sprintf("w%d", i)
		cfg.BindAddr = addrs[i]
		cfg.Seeds = []string{addrs[0], addrs[1]} // node 0 and 1 are the well-known members
		nodes[i] = start(t, cfg)
	}
	waitFor(t, 15*time.Second, "one cluster of 4", converged(nodes, n))
}

// Seeds given as DNS names resolve to all their addresses.
func TestSeedByName(t *testing.T) {
	a := start(t, local("carbon.test", role.Worker))
	_, port, _ := splitAddr(addrOf(a), 0)
	cfg := local("carbon.test", role.Worker)
	cfg.Seeds = []string{"localhost:" + strconv.Itoa(port)}
	b := start(t, cfg)
	waitFor(t, 5*time.Second, "join through a DNS seed", converged([]*Node{a, b}, 2))
}

// A crashed node (closed without leaving) is marked failed by every peer;
// a node that leaves is marked left.
func TestCrashedNodeFailsAndLeftNodeLeaves(t *testing.T) {
	var nodes []*Node
	for i := range 4 {
		cfg := local("carbon.test", role.Worker)
		cfg.NodeName = fmt.Sprintf("w%d", i)
		if i > 0 {
			cfg.Seeds = []string{addrOf(nodes[0])}
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "4 alive", converged(nodes, 4))
	nodes[3].Close()
	nodes[2].Leave(context.Background())
	statusOf := func(n *Node, name string) Status {
		m, _ := n.View().Member(name)
		return m.Status
	}
	waitFor(t, 5*time.Second, "w3 failed and w2 left everywhere", func() bool {
		for _, n := range nodes[:2] {
			if statusOf(n, "w3") != StatusFailed || statusOf(n, "w2") != StatusLeft {
				return false
			}
		}
		return true
	})
}

// Drain returns once every alive peer sees the node draining.
func TestDrainSeenByEveryPeer(t *testing.T) {
	var nodes []*Node
	for i := range 4 {
		cfg := local("carbon.test", role.Worker)
		if i > 0 {
			cfg.Seeds = []string{addrOf(nodes[0])}
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "4 alive", converged(nodes, 4))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[1].Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if m, _ := n.View().Member(nodes[1].Name()); m.State != Draining {
			t.Errorf("%s sees the drained node %s right after Drain returned", n.Name(), m.State)
		}
	}
	if nodes[1].Self().Routable() {
		t.Error("a draining member is routable")
	}
}

// A node of another domain is never merged, and joining across domains
// fails with an error naming both domains.
func TestForeignDomainKeptOut(t *testing.T) {
	a := start(t, local("domain-a", role.Worker))
	cfg := local("domain-b", role.Worker)
	cfg.Seeds = []string{addrOf(a)}
	b, err := Join(context.Background(), cfg)
	if err == nil {
		b.Close()
		t.Fatal("Join across domains succeeded")
	}
	if !errors.Is(err, ErrForeignDomain) || !strings.Contains(err.Error(), `"domain-a"`) || !strings.Contains(err.Error(), `"domain-b"`) {
		t.Fatalf("Join error = %v; want ErrForeignDomain naming both domains", err)
	}
	// A node of the right domain still joins, and the foreign one never shows.
	c := start(t, withSeed(local("domain-a", role.Worker), a))
	waitFor(t, 5*time.Second, "a and c converge", converged([]*Node{a, c}, 2))
	for _, n := range []*Node{a, c} {
		for _, m := range n.Members() {
			if m.Domain != "domain-a" {
				t.Errorf("%s sees %s of domain %q", n.Name(), m.Name, m.Domain)
			}
		}
	}
}

func withSeed(cfg Config, seeds ...*Node) Config {
	for _, s := range seeds {
		cfg.Seeds = append(cfg.Seeds, addrOf(s))
	}
	return cfg
}

var (
	key1 = []byte("0123456789abcdef")
	key2 = []byte("fedcba9876543210fedcba9876543210")
)

// A node with the wrong gossip key is kept out: it never appears in a view
// of the domain, while a node with the right key joins.
func TestWrongKeyKeptOut(t *testing.T) {
	ca := local("carbon.test", role.Worker)
	ca.Key = key1
	a := start(t, ca)
	cb := withSeed(local("carbon.test", role.Worker), a)
	cb.Key = key2
	cb.NodeName = "intruder"
	b, err := Join(context.Background(), cb)
	if err == nil {
		b.Close()
		t.Fatal("Join with the wrong key succeeded")
	}
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "Config.Key") {
		t.Fatalf("Join with the wrong key = %v, want ErrKeyMismatch", err)
	}
	// Started without seeds it runs alone; pointed at the domain later, it
	// is still refused.
	cb.Seeds = nil
	b = start(t, cb)
	if _, err := b.serf.Join([]string{addrOf(a)}, true); err == nil {
		t.Fatal("serf join with the wrong key succeeded")
	}
	cc := withSeed(local("carbon.test", role.Worker), a)
	cc.Key = key1
	c := start(t, cc)
	waitFor(t, 5*time.Second, "a and c converge", converged([]*Node{a, c}, 2))
	// Give the intruder the same time again to get in; it must not.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []*Node{a, c} {
			if _, ok := n.View().Member("intruder"); ok {
				t.Fatalf("%s sees the node with the wrong key", n.Name())
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Keys rotate across the live domain: install, use, remove. Afterwards a
// node with only the new key joins and one with only the old key cannot.
func TestKeyRotation(t *testing.T) {
	var nodes []*Node
	for i := range 3 {
		cfg := local("carbon.test", role.Worker)
		cfg.Key = key1
		if i > 0 {
			cfg = withSeed(cfg, nodes[0])
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "3 alive", converged(nodes, 3))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, step := range []struct {
		name string
		f    func(context.Context, []byte) error
		key  []byte
	}{{"install", nodes[1].InstallKey, key2}, {"use", nodes[2].UseKey, key2}, {"remove", nodes[0].RemoveKey, key1}} {
		if err := step.f(ctx, step.key); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
	}
	keys, err := nodes[0].Keys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys = %v, %v; want only the new key", keys, err)
	}
	if err := nodes[0].InstallKey(ctx, []byte("short")); err == nil || !strings.Contains(err.Error(), "5 bytes") {
		t.Fatalf("InstallKey(short) = %v; want an error naming the length", err)
	}
	cNew := withSeed(local("carbon.test", role.Worker), nodes[0])
	cNew.Key = key2
	fresh := start(t, cNew)
	waitFor(t, 5*time.Second, "a node with the new key joins", converged(append(nodes, fresh), 4))
	cOld := withSeed(local("carbon.test", role.Worker), nodes[0])
	cOld.Key = key1
	cOld.NodeName = "stale"
	if old, err := Join(context.Background(), cOld); !errors.Is(err, ErrKeyMismatch) {
		if err == nil {
			old.Close()
		}
		t.Fatalf("Join with the removed key = %v, want ErrKeyMismatch", err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, ok := nodes[0].View().Member("stale"); ok {
			t.Fatal("a node with the removed key got in")
		}
		time.Sleep(20 * time.Millisecond)
	}
	np := start(t, local("carbon.other", role.Worker))
	if err := np.InstallKey(ctx, key1); !errors.Is(err, ErrNoEncryption) {
		t.Fatalf("InstallKey without encryption = %v, want ErrNoEncryption", err)
	}
}

// A node restarted with its snapshot rejoins the peers it knew, without
// seeds.
func TestSnapshotRejoin(t *testing.T) {
	a := start(t, local("carbon.test", role.Worker))
	snap := filepath.Join(t.TempDir(), "serf.snapshot")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := withSeed(local("carbon.test", role.Worker), a)
	cfg.NodeName, cfg.BindAddr, cfg.SnapshotPath = "snap", addr, snap
	b := start(t, cfg)
	waitFor(t, 5*time.Second, "b joins", converged([]*Node{a, b}, 2))
	b.Close()
	waitFor(t, 5*time.Second, "a sees b failed", func() bool {
		m, _ := a.View().Member("snap")
		return m.Status == StatusFailed
	})
	cfg.Seeds = nil
	b2 := start(t, cfg)
	waitFor(t, 10*time.Second, "the restarted node rejoins from its snapshot", converged([]*Node{a, b2}, 2))
}

// Every bad config is rejected before anything starts, naming the field.
func TestBadConfig(t *testing.T) {
	ok := local("carbon.test", role.Worker)
	cases := []struct {
		field string
		mod   func(*Config)
	}{
		{"Domain", func(c *Config) { c.Domain = "" }},
		{"Domain", func(c *Config) { c.Domain = "bad domain!" }},
		{"Role", func(c *Config) { c.Role = "boss" }},
		{"Role", func(c *Config) { c.Role = "" }},
		{"Role", func(c *Config) { c.Observer = true }},
		{"SubDomain", func(c *Config) { c.SubDomain = "a/b" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:99999" }},
		{"AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "example.com:7946" }},
		{"Key", func(c *Config) { c.Key = []byte("too short") }},
		{"Seeds[1]", func(c *Config) { c.Seeds = []string{"10.0.0.1:7946", "host:port:x"} }},
		{"Seeds[0]", func(c *Config) { c.Seeds = []string{":7946"} }},
		{"Endpoints[grpc]", func(c *Config) { c.Endpoints = map[string]string{"grpc": "no-port"} }},
		{"Quorum", func(c *Config) { c.Quorum = -1 }},
		{"NodeName", func(c *Config) { c.NodeName = "has space" }},
		{"ManagerMode", func(c *Config) { c.ManagerMode = 7 }},
		{"Profile", func(c *Config) { c.Profile = 9 }},
	}
	for _, tc := range cases {
		cfg := ok
		tc.mod(&cfg)
		n, err := Join(context.Background(), cfg)
		if err == nil {
			n.Close()
			t.Errorf("%s: Join accepted a bad config", tc.field)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: error %q does not wrap ErrInvalidConfig naming the field", tc.field, err)
		}
	}
}

// Tags that do not fit in memberlist's 512 bytes are refused at Join with
// the size.
func TestOversizedTags(t *testing.T) {
	cfg := local("carbon.test", role.Worker)
	cfg.Properties = map[string]string{"blob": strings.Repeat("x", 600)}
	n, err := Join(context.Background(), cfg)
	if err == nil {
		n.Close()
		t.Fatal("Join accepted 600 bytes of properties")
	}
	if !errors.Is(err, ErrTagsTooLarge) || !strings.Contains(err.Error(), "512") || !strings.Contains(err.Error(), "properties 6") {
		t.Fatalf("error %q: want ErrTagsTooLarge with the sizes", err)
	}
}

// A Join refused with the caller's own transport leaves the transport
// open (it is the caller's to shut down) and no goroutine behind
// (TestMain checks).
func TestRefusedJoinKeepsCallersTransport(t *testing.T) {
	nw := memnet.New()
	defer nw.Close()
	tr, err := nw.NewTransport(nw.Allocate())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	cfg := local("carbon.test", role.Worker)
	cfg.Transport, cfg.BindAddr = tr, tr.Addr()
	cfg.Properties = map[string]string{"blob": strings.Repeat("x", 600)}
	if _, err := Join(context.Background(), cfg); !errors.Is(err, ErrTagsTooLarge) {
		t.Fatalf("Join: %v, want ErrTagsTooLarge", err)
	}
	if _, err := nw.NewTransport(tr.Addr()); !errors.Is(err, memnet.ErrAddrInUse) {
		t.Fatalf("the caller's transport was shut down: a new one at its address got %v, want ErrAddrInUse", err)
	}
}

// Observers see the domain, appear as observers, and are never routable
// or active.
func TestObserver(t *testing.T) {
	m := start(t, local("carbon.test", role.Manager))
	cfg := withSeed(local("carbon.test", ""), m)
	cfg.Observer = true
	o := start(t, cfg)
	waitFor(t, 5*time.Second, "observer sees the manager active", func() bool {
		a, ok := o.Active(SubDomainManager)
		return ok && a.Name == m.Name() && len(m.Members()) == 2
	})
	self, _ := m.View().Member(o.Name())
	if !self.Observer || self.Routable() || self.Role != role.None || o.Writable() {
		t.Fatalf("observer seen as %+v (writable %v)", self, o.Writable())
	}
}

// Cluster messages reach every other member exactly once; the sender does
// not get its own; size and names are checked.
func TestMessages(t *testing.T) {
	var nodes []*Node
	for i := range 3 {
		cfg := local("carbon.test", role.Worker)
		cfg.NodeName = fmt.Sprintf("m%d", i)
		if i > 0 {
			cfg = withSeed(cfg, nodes[0])
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "3 alive", converged(nodes, 3))
	var mu sync.Mutex
	got := map[string]map[string]int{}
	for _, n := range nodes {
		name := n.Name()
		got[name] = map[string]int{}
		if err := n.Handle("cache.invalidate", func(m Message) {
			mu.Lock()
			got[name][m.From+":"+string(m.Payload)]++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	const count = 20
	for i := range count {
		if err := nodes[0].Broadcast(ctx, "cache.invalidate", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "every message at m1 and m2", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["m1"]) == count && len(got["m2"]) == count
	})
	// Let gossip retransmit for a while, then check nothing came twice.
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for name, msgs := range got {
		for k, c := range msgs {
			if c != 1 {
				t.Errorf("%s got %s %d times", name, k, c)
			}
		}
	}
	if len(got["m0"]) != 0 {
		t.Errorf("the sender got its own messages: %v", got["m0"])
	}
	if err := nodes[0].Broadcast(ctx, "big", make([]byte, MaxMessageSize)); !errors.Is(err, ErrMessageTooLarge) || !strings.Contains(err.Error(), "1024") {
		t.Errorf("oversized Broadcast = %v", err)
	}
	for _, bad := range []string{"", "_internal", strings.Repeat("n", 65)} {
		if err := nodes[0].Broadcast(ctx, bad, nil); !errors.Is(err, ErrBadMessageName) {
			t.Errorf("Broadcast(%q) = %v, want ErrBadMessageName", bad, err)
		}
	}
}

// A watcher that never reads does not stall the node: views keep coming
// and the cluster converges.
func TestSlowWatcherDoesNotStall(t *testing.T) {
	a := start(t, local("carbon.test", role.Worker))
	stuck := a.Watch(context.Background()) // never read
	_ = stuck
	var nodes = []*Node{a}
	for range 4 {
		nodes = append(nodes, start(t, withSeed(local("carbon.test", role.Worker), a)))
	}
	waitFor(t, 10*time.Second, "5 alive despite a stuck watcher", converged(nodes, 5))
	ctx, cancel := context.WithCancel(context.Background())
	w := a.Watch(ctx)
	v := <-w
	if v.Len() != 5 || v.Version() == 0 {
		t.Fatalf("Watch's first view has %d members, version %d", v.Len(), v.Version())
	}
	cancel()
	for range w {
	}
}

// A node that leaves is seen left, not failed, by every member, even when
// members exchange state with it while its leave intent is on its way.
// serf (v0.11.0) sends a leaving member's status time in a push/pull as if
// it were a join time: a member that pulls the leaving node's state after
// the node has processed its own leave, and before the intent reaches it,
// then takes the intent for old news and ignores it (without passing it
// on), and marks the node failed when memberlist reports it gone. When
// every member did that, nobody ever saw the node left
// (clustertest.TestRollingRestartConverges failed that way when two
// members had just exchanged state with the leaving node after a join).
func TestLeaveSeenLeftDespiteStateExchanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBubbleFleet(t)
		a := f.add("w-a", role.Worker, nil)
		b := f.add("w-b", role.Worker, nil)
		c := f.add("w-c", role.Worker, nil)
		waitFor(t, 5*time.Second, "3 members", converged(f.live(), 3))
		// Past the exchanges every join schedules (syncAfterJoin: the
		// last within 50 gossip intervals, 2.5 s here), so that only the
		// periodic push/pull (every 2 s) may still reach w-a while it is
		// left and mend the views: the bubble's clock, no wall time.
		time.Sleep(5 * time.Second)
		// The timers due at this instant (gossip rounds among them) first
		// run their course, so that w-a's next round is ahead.
		synctest.Wait()
		left := make(chan error, 1)
		go func() { left <- a.Leave(context.Background()) }()
		// Every goroutine now waits: w-a has taken its own leave and waits
		// for its gossip round to send the intent, and no time passes
		// until the exchanges below are done.
		synctest.Wait()
		if m, _ := serfMember(a.serf, "w-a"); m.Status != serf.StatusLeaving {
			t.Fatalf("w-a sees itself %v before its gossip round, want leaving", m.Status)
		}
		for _, n := range []*Node{b, c} {
			// A push/pull, as the periodic one or a join does; refusing
			// it is allowed.
			_, _ = n.serf.Memberlist().Join([]string{addrOf(a)})
		}
		if err := <-left; err != nil {
			t.Fatalf("Leave: %v", err)
		}
		waitFor(t, 30*time.Second, "w-a left in every view", func() bool {
			for _, n := range []*Node{b, c} {
				if m, _ := n.View().Member("w-a"); m.Status != StatusLeft {
					return false
				}
			}
			return true
		})
	})
}
