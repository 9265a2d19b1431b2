package clustertest

import (
	"fmt"
	"time"
)

// needNet fails the test on Loopback, where network faults cannot be
// injected.
func (c *Cluster) needNet(what string) bool {
	if c.net == nil {
		if c.t != nil {
			c.t.Helper()
		}
		c.fatalf("%s: %v", what, ErrNeedsInMemory)
		return false
	}
	return true
}

func (c *Cluster) addrsOf(what string, names []string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(names))
	for _, name := range names {
		m, err := c.get(name)
		if err != nil {
			c.mu.Unlock()
			c.fatalf("%s: %v", what, err)
			c.mu.Lock()
			return nil, false
		}
		out = append(out, m.addr)
	}
	return out, true
}

// Partition splits the cluster into groups of node names: nodes of
// different groups cannot exchange anything. Nodes not named, including
// nodes added later, form one more group. A call replaces the previous
// partition; Partition() removes it. WaitConverged then expects each node
// to see exactly the running nodes of its own group alive. InMemory only.
func (c *Cluster) Partition(groups ...[]string) {
	if c.t != nil {
		c.t.Helper()
	}
	if !c.needNet("Partition") {
		return
	}
	addrGroups := make([][]string, 0, len(groups))
	seen := map[string]bool{}
	for _, g := range groups {
		for _, name := range g {
			if seen[name] {
				c.fatalf("clustertest: Partition: node %q is in two groups", name)
				return
			}
			seen[name] = true
		}
		a, ok := c.addrsOf("Partition", g)
		if !ok {
			return
		}
		addrGroups = append(addrGroups, a)
	}
	c.mu.Lock()
	c.groups = nil
	for _, g := range groups {
		c.groups = append(c.groups, append([]string(nil), g...))
	}
	c.mu.Unlock()
	c.net.Partition(addrGroups...)
}

// Heal removes the partition and every Cut. Crashed nodes stay crashed;
// loss and latency stay as they are. InMemory only.
func (c *Cluster) Heal() {
	if c.t != nil {
		c.t.Helper()
	}
	if !c.needNet("Heal") {
		return
	}
	c.mu.Lock()
	c.groups = nil
	c.mu.Unlock()
	c.net.Heal()
}

// Cut drops the packets from one node to another (one direction of the
// link; streams need both, so they fail both ways). Heal or Mend undo it.
// WaitConverged does not model cuts: a cut node may still be seen alive
// through indirect probes. InMemory only.
func (c *Cluster) Cut(from, to string) {
	if c.t != nil {
		c.t.Helper()
	}
	if !c.needNet("Cut") {
		return
	}
	a, ok := c.addrsOf("Cut", []string{from, to})
	if !ok {
		return
	}
	c.net.Cut(a[0], a[1])
}

// Mend undoes one Cut. InMemory only.
func (c *Cluster) Mend(from, to string) {
	if c.t != nil {
		c.t.Helper()
	}
	if !c.needNet("Mend") {
		return
	}
	a, ok := c.addrsOf("Mend", []string{from, to})
	if !ok {
		return
	}
	c.net.Mend(a[0], a[1])
}

// SetLoss makes the network drop the given fraction (0 to 1) of packets,
// deterministically under Options.Seed. Streams (memberlist's push-pull
// and joins) are not affected, as TCP retransmits. InMemory only.
func (c *Cluster) SetLoss(fraction float64) {
	if c.t != nil {
		c.t.Helper()
	}
	if fraction < 0 || fraction > 1 {
		c.fatalf("clustertest: SetLoss(%v): want a fraction from 0 to 1", fraction)
		return
	}
	if !c.needNet("SetLoss") {
		return
	}
	c.net.SetLoss(fraction)
}

// SetLatency delays every packet by d, one way. InMemory only.
func (c *Cluster) SetLatency(d time.Duration) {
	if c.t != nil {
		c.t.Helper()
	}
	if d < 0 {
		c.fatalf("clustertest: SetLatency(%v): want a non-negative delay", d)
		return
	}
	if !c.needNet("SetLatency") {
		return
	}
	c.net.SetLatency(d)
}

// groupOf returns the index of the partition group of name; unlisted
// nodes are in group -1. c.mu must be held.
func (c *Cluster) groupOfLocked(name string) int {
	for i, g := range c.groups {
		for _, n := range g {
			if n == name {
				return i
			}
		}
	}
	return -1
}

// String names the cluster for logs and failure messages.
func (c *Cluster) String() string {
	return fmt.Sprintf("clustertest.Cluster(%s on %s, %d nodes)", c.opts.Domain, c.opts.Network, len(c.Names()))
}
