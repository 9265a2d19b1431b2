package clustertest

import (
	"context"
	"fmt"

	"github.com/carbonkit/carbon/cluster"
)

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
