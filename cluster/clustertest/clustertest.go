package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/memnet"
	"github.com/carbonkit/carbon/role"
)

// Network says what a Cluster's nodes gossip over.
type Network int

const (
	// InMemory (the default) runs every node on one in-process network:
	// fast, able to carry hundreds of nodes, and with every fault control.
	InMemory Network = iota
	// Loopback runs every node on real UDP and TCP sockets of 127.0.0.1.
	// Crash, Restart, Drain and Leave work; the network faults (Partition,
	// Cut, SetLoss, SetLatency) do not, as the kernel's loopback cannot be
	// told to drop packets.
	Loopback
)

// String returns "memnet" or "loopback".
func (n Network) String() string {
	if n == Loopback {
		return "loopback"
	}
	return "memnet"
}

// NodeSpec describes one node of a Cluster.
type NodeSpec struct {
	// Name is the node's unique name. Default: its role and a counter,
	// "manager-1", "worker-1", "worker-2", "observer-1"..., in the order
	// the nodes are added.
	Name string
	// Role is role.Worker or role.Manager; empty for an observer.
	Role role.Role
	// SubDomain is the node's sub-domain; empty for the role's default.
	SubDomain string
	// Observer makes the node an observer (Role must be empty).
	Observer bool
	// Endpoints and Properties are passed to [cluster.Config].
	Endpoints  map[string]string
	Properties map[string]string
	// Config, if set, is called with the node's final [cluster.Config]
	// just before Join, after [Options.Config]: the place for any setting
	// this spec has no field for. It is called again on every Restart.
	Config func(*cluster.Config)
}

// Workers returns n worker specs with default names.
func Workers(n int) []NodeSpec { return specs(n, NodeSpec{Role: role.Worker}) }

// Managers returns n manager specs with default names.
func Managers(n int) []NodeSpec { return specs(n, NodeSpec{Role: role.Manager}) }

// Observers returns n observer specs with default names.
func Observers(n int) []NodeSpec { return specs(n, NodeSpec{Observer: true}) }

func specs(n int, s NodeSpec) []NodeSpec {
	out := make([]NodeSpec, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// Options configure a Cluster. The zero value is a cluster of domain
// "clustertest" on the in-memory network with fast timings.
type Options struct {
	// Network is InMemory (default) or Loopback.
	Network Network
	// Domain of every node. Default "clustertest".
	Domain string
	// Seed makes the in-memory network's packet loss deterministic.
	// 0 means seed 1, so that runs drop the same packets unless told
	// otherwise; memberlist's own randomness is not covered.
	Seed int64
	// Key is the gossip encryption key of every node (16, 24 or 32 bytes);
	// empty means no encryption.
	Key []byte
	// Logger receives every node's logs. Default: discarded.
	Logger *slog.Logger
	// Config, if set, is called with every node's [cluster.Config] before
	// the node's own [NodeSpec.Config]. Nodes start with
	// [cluster.ProfileLocal] timings; set Profile here for others.
	Config func(*cluster.Config)
	// Timeout bounds Start's wait for convergence and each Join. Default
	// 30 s, plus 100 ms per node beyond 10.
	Timeout time.Duration
	// SameNetwork puts this cluster on the in-memory network of another
	// InMemory cluster, to test what happens between clusters (another
	// domain, another key). Fault controls of either act on the shared
	// network. Stop this cluster before the other (t.Cleanup does, when
	// it was started after); the other's leak check covers both.
	SameNetwork *Cluster
	// NoLeakCheck turns off the goroutine leak check of the cleanup, for
	// tests that run in parallel with others (t.Parallel), whose
	// goroutines the check cannot tell apart.
	NoLeakCheck bool
}

// Errors of a Cluster.
var (
	// ErrUnknownNode is returned for a node name the cluster never had.
	ErrUnknownNode = errors.New("clustertest: unknown node")
	// ErrNotRunning is returned by an operation on a crashed or left node.
	ErrNotRunning = errors.New("clustertest: node is not running")
	// ErrNeedsInMemory is reported by the fault controls on Loopback.
	ErrNeedsInMemory = errors.New("clustertest: this fault needs the InMemory network (Options.Network), the cluster runs on Loopback")
	// ErrNotConverged wraps the error of a wait that timed out.
	ErrNotConverged = errors.New("clustertest: not converged")
)

type nodeState int

const (
	running nodeState = iota
	crashed
	left
)

// member is one node of the cluster across its restarts.
type member struct {
	spec  NodeSpec
	addr  string
	node  *cluster.Node
	tr    *memnet.Transport
	state nodeState
	order int
	// deferServing: the node stays starting until the test calls Ready.
	deferServing bool
	// closed is closed once node.Close has returned after a Crash.
	closed chan struct{}
}

// Cluster is a set of nodes of one domain in this process. Its methods
// are safe for concurrent use, but fault controls and waits are meant to
// be driven by one test goroutine.
type Cluster struct {
	t       testing.TB
	opts    Options
	net     *memnet.Network // nil on Loopback
	ownsNet bool
	timeout time.Duration
	leakOpt goleak.Option

	mu      sync.Mutex
	members map[string]*member
	order   []string       // names, in the order they were added
	counter map[string]int // default names per role
	groups  [][]string     // current partition, by name
	stopped bool

	stopOnce sync.Once
}

// New returns an empty Cluster; add nodes with Add. t is used to report
// failures (t.Fatal) and to stop every node at the end of the test
// (t.Cleanup), then check that no goroutine was leaked. t may be nil
// outside tests (Examples, programs): failures then panic, and the caller
// must call Stop.
func New(t testing.TB, opts Options) *Cluster {
	if t != nil {
		t.Helper()
	}
	c := &Cluster{
		t:       t,
		opts:    opts,
		members: map[string]*member{},
		counter: map[string]int{},
	}
	if c.opts.Domain == "" {
		c.opts.Domain = "clustertest"
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if c.opts.Seed == 0 {
		c.opts.Seed = 1
	}
	c.timeout = c.opts.Timeout
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	switch {
	case opts.Network != InMemory && opts.Network != Loopback:
		c.fatalf("clustertest: unknown Options.Network %d", int(opts.Network))
	case opts.SameNetwork != nil:
		if opts.Network != InMemory || opts.SameNetwork.net == nil {
			c.fatalf("clustertest: Options.SameNetwork needs both clusters InMemory")
		}
		c.net = opts.SameNetwork.net
		c.opts.NoLeakCheck = true
	case opts.Network == InMemory:
		c.net = memnet.New(memnet.WithSeed(c.opts.Seed))
		c.ownsNet = true
	}
	if !c.opts.NoLeakCheck {
		c.leakOpt = goleak.IgnoreCurrent()
	}
	if t != nil {
		t.Cleanup(c.cleanup)
	}
	return c
}

// Start starts a Cluster with a node for every spec, joined one after the
// other, and waits until every node sees all of them alive and serving
// and agrees on the active manager of each sub-domain. See [New] for t.
func Start(t testing.TB, opts Options, specs ...NodeSpec) *Cluster {
	if t != nil {
		t.Helper()
	}
	c := New(t, opts)
	for _, s := range specs {
		c.Add(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.waitBudget())
	defer cancel()
	if err := c.WaitConverged(ctx); err != nil {
		c.fatalf("clustertest: Start: %v", err)
	}
	return c
}

func (c *Cluster) waitBudget() time.Duration {
	c.mu.Lock()
	n := len(c.members)
	c.mu.Unlock()
	return c.timeout + time.Duration(max(0, n-10))*100*time.Millisecond
}

func (c *Cluster) fatalf(format string, args ...any) {
	if c.t == nil {
		panic(fmt.Sprintf(format, args...))
	}
	c.t.Helper()
	c.t.Fatalf(format, args...)
}

// Network is the network the cluster runs on.
func (c *Cluster) Network() Network { return c.opts.Network }

// Domain is the domain of the cluster's nodes.
func (c *Cluster) Domain() string { return c.opts.Domain }

// Add joins a new node, with the running nodes as seeds, and returns it
// without waiting for the others to see it (use WaitConverged). It fails
// the test if Join fails.
func (c *Cluster) Add(spec NodeSpec) *cluster.Node {
	if c.t != nil {
		c.t.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.Join(ctx, spec)
	if err != nil {
		c.fatalf("%v", err)
	}
	return n
}

// Join is Add returning Join's error rather than failing the test, for
// nodes that are expected not to get in (another domain, a wrong key).
// A node that fails to join is not part of the cluster.
func (c *Cluster) Join(ctx context.Context, spec NodeSpec) (*cluster.Node, error) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil, errors.New("clustertest: Join after Stop")
	}
	if spec.Name == "" {
		spec.Name = c.nextNameLocked(spec)
	}
	if _, dup := c.members[spec.Name]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("clustertest: a node named %q is already in the cluster", spec.Name)
	}
	m := &member{spec: spec, order: len(c.order)}
	seeds := c.seedsLocked("")
	c.mu.Unlock()

	if err := c.startMember(ctx, m, seeds); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.members[spec.Name]; dup || c.stopped {
		// Lost a race with a concurrent Join of the same name, or Stop.
		m.node.Close()
		return nil, fmt.Errorf("clustertest: a node named %q is already in the cluster", spec.Name)
	}
	c.members[spec.Name] = m
	c.order = append(c.order, spec.Name)
	return m.node, nil
}

func (c *Cluster) nextNameLocked(s NodeSpec) string {
	base := string(s.Role)
	if s.Observer || base == "" {
		base = "observer"
	}
	for {
		c.counter[base]++
		name := base + "-" + strconv.Itoa(c.counter[base])
		if _, used := c.members[name]; !used {
			return name
		}
	}
}

// seedsLocked returns up to three running nodes' addresses, oldest first,
// skipping the named node.
func (c *Cluster) seedsLocked(skip string) []string {
	var seeds []string
	for _, name := range c.order {
		m := c.members[name]
		if name == skip || m.state != running {
			continue
		}
		seeds = append(seeds, m.addr)
		if len(seeds) == 3 {
			break
		}
	}
	return seeds
}

// startMember joins m (at m.addr if it has one, else at a new address).
func (c *Cluster) startMember(ctx context.Context, m *member, seeds []string) error {
	cfg := cluster.Config{
		Domain:     c.opts.Domain,
		SubDomain:  m.spec.SubDomain,
		Role:       m.spec.Role,
		Observer:   m.spec.Observer,
		NodeName:   m.spec.Name,
		Seeds:      seeds,
		Endpoints:  maps.Clone(m.spec.Endpoints),
		Properties: maps.Clone(m.spec.Properties),
		Key:        c.opts.Key,
		Profile:    cluster.ProfileLocal,
		Logger:     c.opts.Logger,
	}
	if c.net != nil {
		tr, err := c.net.NewTransport(m.addr)
		if err != nil {
			return fmt.Errorf("clustertest: node %s: %w", m.spec.Name, err)
		}
		cfg.Transport = tr
		cfg.BindAddr, cfg.AdvertiseAddr = tr.Addr(), tr.Addr()
		m.tr = tr
	} else if m.addr != "" {
		cfg.BindAddr = m.addr
	} else {
		cfg.BindAddr = "127.0.0.1:0"
	}
	if c.opts.Config != nil {
		c.opts.Config(&cfg)
	}
	if m.spec.Config != nil {
		m.spec.Config(&cfg)
	}
	n, err := cluster.Join(ctx, cfg)
	if err != nil {
		if m.tr != nil {
			m.tr.Shutdown() // Join may fail before serf owns it
		}
		return fmt.Errorf("clustertest: join %s: %w", m.spec.Name, err)
	}
	m.node, m.state = n, running
	m.addr = n.Self().Addr
	m.deferServing = cfg.DeferServing
	return nil
}

func (c *Cluster) get(name string) (*member, error) {
	m, ok := c.members[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	return m, nil
}

// Node returns the running node of that name, or nil if it is crashed,
// left or unknown.
func (c *Cluster) Node(name string) *cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[name]; ok && m.state == running {
		return m.node
	}
	return nil
}

// Nodes returns the running nodes in the order they were added.
func (c *Cluster) Nodes() []*cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*cluster.Node
	for _, name := range c.order {
		if m := c.members[name]; m.state == running {
			out = append(out, m.node)
		}
	}
	return out
}

// Names returns the names of the running nodes in the order they were
// added.
func (c *Cluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, name := range c.order {
		if c.members[name].state == running {
			out = append(out, name)
		}
	}
	return out
}

// Addr returns the gossip address ("ip:port") of the named node, running
// or not: a restarted node keeps it. It is "" for an unknown name.
func (c *Cluster) Addr(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[name]; ok {
		return m.addr
	}
	return ""
}

// Addrs returns the gossip addresses of the running nodes, for the Seeds
// of a node started outside the cluster.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, name := range c.order {
		if m := c.members[name]; m.state == running {
			out = append(out, m.addr)
		}
	}
	return out
}

// Crash stops the named node as a killed process would: without leaving,
// so its peers detect the failure by their probes. On InMemory its
// address is first cut off the network (as Network.Crash does), so not
// even the packets of its shutdown get out; it stays cut off until
// Restart.
func (c *Cluster) Crash(name string) {
	if c.t != nil {
		c.t.Helper()
	}
	c.mu.Lock()
	m, err := c.get(name)
	if err == nil && m.state != running {
		err = fmt.Errorf("%w: Crash(%q)", ErrNotRunning, name)
	}
	if err != nil {
		c.mu.Unlock()
		c.fatalf("%v", err)
		return
	}
	m.state = crashed
	n := m.node
	closed := make(chan struct{})
	m.closed = closed
	c.mu.Unlock()
	if c.net != nil {
		c.net.Crash(m.addr)
	}
	// Close can take a while (a tag update waits for its broadcast up to
	// serf's BroadcastTimeout, which never comes on a dead node); the
	// process is dead at once for its peers, so do not make the test wait:
	// Restart and Stop do.
	go func() {
		defer close(closed)
		n.Close()
	}()
}

// Restart starts a new node with the same spec, name and address as a
// crashed or left one, joining the running nodes, and returns it without
// waiting for the others to see it. Reusing the address lets peers that
// still hold the node as failed take it back at once.
func (c *Cluster) Restart(name string) *cluster.Node {
	if c.t != nil {
		c.t.Helper()
	}
	c.mu.Lock()
	m, err := c.get(name)
	if err == nil && m.state == running {
		err = fmt.Errorf("clustertest: Restart(%q): the node is running; Crash or Leave it first", name)
	}
	if err != nil {
		c.mu.Unlock()
		c.fatalf("%v", err)
		return nil
	}
	seeds := c.seedsLocked(name)
	closed := m.closed
	c.mu.Unlock()
	if closed != nil {
		<-closed // the old node must free its address first
	}
	if c.net != nil {
		c.net.Restart(m.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// The member is not running while startMember writes to it, and
	// readers of addr and node only use running members or addr, which
	// does not change; hold the lock only to publish.
	nm := &member{spec: m.spec, addr: m.addr, order: m.order}
	if err := c.startMember(ctx, nm, seeds); err != nil {
		c.fatalf("clustertest: Restart: %v", err)
		return nil
	}
	c.mu.Lock()
	c.members[name] = nm
	c.mu.Unlock()
	return nm.node
}

// Drain drains the named node (see [cluster.Node.Drain]); it keeps
// running, and WaitConverged then expects every peer to see it draining.
func (c *Cluster) Drain(ctx context.Context, name string) error {
	n, err := c.running(name)
	if err != nil {
		return err
	}
	return n.Drain(ctx)
}

// Leave makes the named node leave gracefully (see [cluster.Node.Leave]).
// It can be restarted afterwards.
func (c *Cluster) Leave(ctx context.Context, name string) error {
	c.mu.Lock()
	m, err := c.get(name)
	if err == nil && m.state != running {
		err = fmt.Errorf("%w: Leave(%q)", ErrNotRunning, name)
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	m.state = left
	n := m.node
	c.mu.Unlock()
	return n.Leave(ctx)
}

func (c *Cluster) running(name string) (*cluster.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.get(name)
	if err != nil {
		return nil, err
	}
	if m.state != running {
		return nil, fmt.Errorf("%w: %q", ErrNotRunning, name)
	}
	return m.node, nil
}

// Stop closes every running node (without leaving) and the in-memory
// network. It is idempotent, and called by t.Cleanup.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopped = true
		var nodes []*cluster.Node
		var closing []chan struct{}
		for _, m := range c.members {
			if m.state == running {
				nodes = append(nodes, m.node)
			} else if m.closed != nil {
				closing = append(closing, m.closed)
			}
			m.state = crashed
		}
		c.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { n.Close() })
		}
		wg.Wait()
		for _, ch := range closing {
			<-ch
		}
		if c.ownsNet {
			c.net.Close()
		}
	})
}

func (c *Cluster) cleanup() {
	c.Stop()
	if c.opts.NoLeakCheck {
		return
	}
	if err := FindLeaks(c.leakOpt); err != nil {
		c.t.Errorf("clustertest: goroutines left after the cluster stopped: %v", err)
	}
}

// FindLeaks is goleak.Find retried for up to 5 s: memberlist's timers
// (suspicion, indirect probes) outlive its Shutdown by up to a probe
// timeout, which on a loaded host under -race is longer than goleak's
// own half-second of retries. Tests can use it in TestMain.
func FindLeaks(opts ...goleak.Option) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond) // goleak has already retried; back off
	}
}
