package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/memnet"
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
