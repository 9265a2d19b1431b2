package clustertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/carbonkit/carbon/cluster"
)

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
