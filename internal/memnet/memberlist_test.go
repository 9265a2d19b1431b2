package memnet

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fastConfig is memberlist's local profile sped up for tests (and
// stretched by slowdown under the race detector).
func fastConfig(name string) *memberlist.Config {
	return timedConfig(name, slowdown)
}

// timedConfig is the fast profile with every interval multiplied by k.
func timedConfig(name string, k time.Duration) *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.ProbeInterval = k * 100 * time.Millisecond
	c.ProbeTimeout = k * 50 * time.Millisecond
	c.GossipInterval = k * 20 * time.Millisecond
	c.SuspicionMult = 2
	c.PushPullInterval = k * time.Second
	c.TCPTimeout = k * time.Second
	// LZW costs more CPU than anything else in a packet's life, and a
	// single process running a whole cluster is CPU-bound.
	c.EnableCompression = false
	c.Logger = log.New(io.Discard, "", 0)
	if os.Getenv("CARBON_MEMNET_LOG") != "" {
		c.Logger = log.New(os.Stderr, name+" ", log.Lmicroseconds)
	}
	return c
}

// memConfig is fastConfig over tr, with the bind and advertise addresses
// set to the transport's, as a caller mapping "host:port" settings would.
func memConfig(name string, tr *Transport) *memberlist.Config {
	c := fastConfig(name)
	c.Transport = tr
	host, port, _ := net.SplitHostPort(tr.Addr())
	p, _ := strconv.Atoi(port)
	c.BindAddr, c.BindPort = host, p
	c.AdvertiseAddr, c.AdvertisePort = host, p
	return c
}

// cluster is a set of memberlist nodes under test.
type cluster struct {
	tb    testing.TB
	net   *Network // nil over UDP
	nodes []*memberlist.Memberlist
	trs   []*Transport
	// stretch multiplies the timings (and waits) beyond slowdown; 0 is 1.
	stretch time.Duration
}

func (c *cluster) name(i int) string { return fmt.Sprintf("node-%03d", i) }

// start creates node i (over memnet at addr, "" for the next free one)
// and shuts it down at cleanup.
func (c *cluster) start(i int, addr string) *memberlist.Memberlist {
	c.tb.Helper()
	tr, err := c.net.NewTransport(addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	cfg := memConfig(c.name(i), tr)
	if c.stretch > 1 {
		cfg = timedConfig(c.name(i), slowdown*c.stretch)
		cfg.Transport, cfg.BindAddr, cfg.BindPort = tr, "", 0
	}
	m, err := memberlist.Create(cfg)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.tb.Cleanup(func() { _ = m.Shutdown() })
	for len(c.nodes) <= i {
		c.nodes = append(c.nodes, nil)
		c.trs = append(c.trs, nil)
	}
	c.nodes[i], c.trs[i] = m, tr
	return m
}

// newCluster starts count memnet nodes, all joining node 0 at once.
func newCluster(tb testing.TB, n *Network, count int) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, net: n}
	for i := range count {
		c.start(i, "")
	}
	c.joinAll(0, c.all()...)
	return c
}

func (c *cluster) all() []int {
	idx := make([]int, len(c.nodes))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func (c *cluster) addr(i int) string {
	n := c.nodes[i].LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// joinParallel bounds the joins in flight: the seed answers each with a
// push/pull of its whole state, which under the race detector on two
// cores can outlast TCPTimeout when dozens arrive at once.
const joinParallel = 8

// joinAttempts is how many times a node tries to join before the test
// fails.
const joinAttempts = 5

// joinAll makes each listed node join node seed, concurrently, as
// processes started together would.
func (c *cluster) joinAll(seed int, idx ...int) {
	c.tb.Helper()
	seedAddr := c.addr(seed)
	errs := make(chan error, len(idx))
	sem := make(chan struct{}, joinParallel)
	var wg sync.WaitGroup
	for _, i := range idx {
		if i == seed {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Retry as users do (serf's retry_join): a busy seed can
			// miss TCPTimeout on a two-core machine.
			var err error
			for range joinAttempts {
				if _, err = c.nodes[i].Join([]string{seedAddr}); err == nil {
					return
				}
			}
			errs <- fmt.Errorf("%s join: %w", c.name(i), err)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.tb.Fatal(err)
	}
}

// alive returns the names node i sees alive.
func (c *cluster) alive(i int) map[string]bool {
	set := make(map[string]bool)
	for _, m := range c.nodes[i].Members() {
		if m.State == memberlist.StateAlive {
			set[m.Name] = true
		}
	}
	return set
}

// sees reports whether every node in viewers sees exactly the nodes in
// want alive.
func (c *cluster) sees(viewers, want []int) bool {
	for _, v := range viewers {
		got := c.alive(v)
		if len(got) != len(want) {
			return false
		}
		for _, w := range want {
			if !got[c.name(w)] {
				return false
			}
		}
	}
	return true
}

// waitSee waits until every viewer sees exactly want alive. The timeout
// is stretched by slowdown, as the timings are.
func (c *cluster) waitSee(timeout time.Duration, viewers, want []int) {
	c.tb.Helper()
	timeout *= slowdown * max(c.stretch, 1)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !c.sees(viewers, want) {
		if time.Now().After(deadline) {
			c.tb.Fatalf("timed out after %v waiting for %d nodes to see exactly %d alive: %s",
				timeout, len(viewers), len(want), c.summary(viewers))
		}
		<-tick.C
	}
}

// summary counts the viewers by how many members they see alive.
func (c *cluster) summary(viewers []int) string {
	hist := make(map[int]int)
	suspect := 0
	for _, v := range viewers {
		for _, m := range c.nodes[v].Members() {
			if m.State == memberlist.StateAlive {
				hist[len(c.alive(v))]++
				break
			}
		}
		suspect += len(c.nodes[v].Members()) - len(c.alive(v))
	}
	return fmt.Sprintf("viewers by alive count %v, %d suspect entries", hist, suspect)
}

func without(idx []int, drop ...int) []int {
	var out []int
outer:
	for _, i := range idx {
		for _, d := range drop {
			if i == d {
				continue outer
			}
		}
		out = append(out, i)
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestMemberlistCrashAndRestart(t *testing.T) {
	t.Parallel() // mostly waiting on failure detectors: overlap them
	n := New(WithSeed(1))
	defer n.Close()
	c := newCluster(t, n, 6)
	all := c.all()
	c.waitSee(5*time.Second, all, all)

	start := time.Now()
	n.Crash(c.addr(5))
	c.waitSee(10*time.Second, without(all, 5), without(all, 5))
	t.Logf("crashed node declared dead by all 5 peers in %v", time.Since(start))
	// Cut off, the crashed node's memberlist sees everyone else fail.
	c.waitSee(10*time.Second, []int{5}, []int{5})

	// The same process comes back and rejoins (serf would, on its
	// reconnect timer).
	n.Restart(c.addr(5))
	c.joinAll(0, 5)
	c.waitSee(10*time.Second, all, all)
}

func TestMemberlistReplaceAtSameAddress(t *testing.T) {
	t.Parallel() // mostly waiting on failure detectors: overlap them
	n := New(WithSeed(2))
	defer n.Close()
	c := newCluster(t, n, 6)
	all := c.all()
	c.waitSee(5*time.Second, all, all)

	// Stop node 5 without leaving, as a killed process.
	addr := c.addr(5)
	if err := c.nodes[5].Shutdown(); err != nil {
		t.Fatal(err)
	}
	c.waitSee(10*time.Second, without(all, 5), without(all, 5))
	// A new process at the same address and with the same name.
	c.start(5, addr)
	c.joinAll(0, 5)
	c.waitSee(10*time.Second, all, all)
}

func TestMemberlistPartitionAndHeal(t *testing.T) {
	t.Parallel() // mostly waiting on failure detectors: overlap them
	n := New(WithSeed(3))
	defer n.Close()
	c := newCluster(t, n, 10)
	all := c.all()
	c.waitSee(5*time.Second, all, all)

	left, right := span(0, 5), span(5, 10)
	addrs := func(idx []int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, c.addr(i))
		}
		return out
	}
	n.Partition(addrs(left), addrs(right))
	c.waitSee(15*time.Second, left, left)
	c.waitSee(15*time.Second, right, right)

	n.Heal()
	c.joinAll(0, 5) // one node of the other side rejoins, gossip does the rest
	c.waitSee(15*time.Second, all, all)
}

func TestMemberlistLoss(t *testing.T) {
	t.Parallel() // mostly waiting on failure detectors: overlap them
	n := New(WithSeed(4))
	defer n.Close()
	n.SetLoss(0.2)
	c := newCluster(t, n, 10)
	all := c.all()
	c.waitSee(15*time.Second, all, all)
	// Under loss nodes may be suspected or even declared dead for a while,
	// but they refute it: let it run, then every view must heal.
	deadline := time.Now().Add(2 * time.Second)
	waitFor(t, 3*time.Second, "two seconds of gossip under loss", func() bool {
		return time.Now().After(deadline)
	})
	n.SetLoss(0)
	c.waitSee(15*time.Second, all, all)
	s := n.Stats()
	t.Logf("stats: %+v (%.1f%% lost)", s, 100*float64(s.PacketsLost)/float64(s.PacketsSent))
	if s.PacketsLost == 0 {
		t.Error("no packet lost at 20% loss")
	}
}

// TestMemberlistOneWayCut documents what memberlist does when one
// direction of a link fails: a's pings to b are lost, and so are a's acks
// to b's pings, but the indirect probes through a third node succeed, so
// neither is declared dead. (The TCP fallback probe and push/pull between
// them fail, as a stream needs both directions.)
func TestMemberlistOneWayCut(t *testing.T) {
	t.Parallel() // mostly waiting on failure detectors: overlap them
	n := New(WithSeed(5))
	defer n.Close()
	c := newCluster(t, n, 5)
	all := c.all()
	c.waitSee(5*time.Second, all, all)

	n.Cut(c.addr(0), c.addr(1))
	dropped := n.Stats().PacketsDropped
	window := time.Now().Add(3 * time.Second) // 30 probe intervals
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(window) {
		for i := range all {
			for _, m := range c.nodes[i].Members() {
				if m.State == memberlist.StateDead {
					t.Fatalf("%s declared %s dead across a one-way cut", c.name(i), m.Name)
				}
			}
			if len(c.nodes[i].Members()) != len(all) {
				t.Fatalf("%s lost a member across a one-way cut", c.name(i))
			}
		}
		<-tick.C
	}
	if n.Stats().PacketsDropped == dropped {
		t.Error("the cut dropped nothing")
	}
	n.Heal()
	c.waitSee(5*time.Second, all, all)
}

func TestMemberlistLatency(t *testing.T) {
	t.Parallel()                                            // mostly waiting on failure detectors: overlap them
	n := New(WithSeed(6), WithLatency(10*time.Millisecond)) // RTT 20ms < ProbeTimeout 50ms
	defer n.Close()
	c := newCluster(t, n, 8)
	all := c.all()
	c.waitSee(10*time.Second, all, all)
	n.Crash(c.addr(3))
	c.waitSee(10*time.Second, without(all, 3), without(all, 3))
	// Memberlist's round-trip time to a peer is two one-way latencies.
	to := c.trs[1].from
	rtt, err := c.nodes[0].Ping(c.name(1), to)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 20*time.Millisecond || rtt > 200*time.Millisecond {
		t.Errorf("ping RTT = %v, want about 20ms", rtt)
	}
}

func TestMemberlist50(t *testing.T) { testScale(t, 50, 15*time.Second, 1) }

// TestMemberlist200 is the soak: CARBON_SOAK=1 go test -run 200 ./internal/memnet/
func TestMemberlist200(t *testing.T) {
	if os.Getenv("CARBON_SOAK") == "" {
		t.Skip("set CARBON_SOAK=1 to run 200 nodes")
	}
	// The fast profile's 10k gossip rounds a second do not fit in two
	// cores at 200 nodes (memberlist's own msgpack and GC cost, not the
	// network's): the soak stretches timings 4x.
	testScale(t, 200, 60*time.Second, 4)
}

func testScale(t *testing.T, count int, timeout time.Duration, k time.Duration) {
	n := New(WithSeed(7))
	defer n.Close()
	start := time.Now()
	c := &cluster{tb: t, net: n, stretch: k}
	for i := range count {
		c.start(i, "")
	}
	c.joinAll(0, c.all()...)
	all := c.all()
	c.waitSee(timeout, all, all)
	t.Logf("%d nodes converged in %v", count, time.Since(start))
	start = time.Now()
	n.Crash(c.addr(count - 1))
	c.waitSee(timeout, without(all, count-1), without(all, count-1))
	t.Logf("crash of 1 of %d detected by all in %v", count, time.Since(start))
}
