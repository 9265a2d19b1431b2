package clustertest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/wait"
	"github.com/carbonkit/carbon/role"
)

// pollInterval is how often waits look at the views: a few gossip rounds
// of ProfileLocal, cheap even with hundreds of nodes.
const pollInterval = 10 * time.Millisecond

// WaitFor polls cond until it returns true or ctx ends; then it returns
// an error wrapping ErrNotConverged and ctx's error that names what.
func (c *Cluster) WaitFor(ctx context.Context, what string, cond func() bool) error {
	return c.waitFor(ctx, what, func() (bool, string) { return cond(), "" })
}

func (c *Cluster) waitFor(ctx context.Context, what string, cond func() (bool, string)) error {
	var why string
	err := wait.Until(ctx, pollInterval, func() bool {
		var ok bool
		ok, why = cond()
		return ok
	})
	if err == nil {
		return nil
	}
	if why != "" {
		why = " (" + why + ")"
	}
	return fmt.Errorf("%w: waiting for %s%s: %w", ErrNotConverged, what, why, err)
}

// Eventually is WaitFor with a timeout that fails the test when cond does
// not hold in time.
func (c *Cluster) Eventually(what string, timeout time.Duration, cond func() bool) {
	if c.t != nil {
		c.t.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.WaitFor(ctx, what, cond); err != nil {
		c.fatalf("%v", err)
	}
}

// WaitConverged waits until the views agree with the cluster: every
// running node sees every running node it can reach (the same partition
// group) alive and in the serving state that node reports for itself,
// sees every other node (crashed, left, or across the partition) not
// alive, and every node of a group agrees on the active manager of each
// sub-domain. Nodes outside the cluster (another domain) are ignored.
// Cuts, loss and latency are not modelled: under them the condition is
// what the views should come back to. The error names a node whose view
// is still wrong.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	return c.waitFor(ctx, "convergence", c.converged)
}

// Converged reports whether WaitConverged's condition holds now, and if
// not, why.
func (c *Cluster) Converged() (bool, string) { return c.converged() }

type liveNode struct {
	name         string
	node         *cluster.Node
	group        int
	state        cluster.ServingState
	deferServing bool
}

func (c *Cluster) converged() (bool, string) {
	c.mu.Lock()
	var live []liveNode
	var gone []string
	groups := map[string]int{}
	for _, name := range c.order {
		m := c.members[name]
		g := c.groupOfLocked(name)
		groups[name] = g
		if m.state == running {
			live = append(live, liveNode{name: name, node: m.node, group: g, deferServing: m.deferServing})
		} else {
			gone = append(gone, name)
		}
	}
	c.mu.Unlock()
	subs := map[string]bool{}
	for i := range live {
		self := live[i].node.Self()
		live[i].state = self.State
		if self.State == cluster.Starting && !live[i].deferServing {
			// Join has set it serving; its own view lags behind.
			return false, live[i].name + " has not published its serving state yet"
		}
		if self.Role == role.Manager {
			subs[self.SubDomain] = true
		}
	}
	type agree struct{ by, active string }
	actives := map[int]map[string]agree{} // group -> sub -> first answer
	for _, l := range live {
		v := l.node.View()
		for _, o := range live {
			m, ok := v.Member(o.name)
			reach := o.group == l.group
			switch {
			case reach && !ok:
				return false, fmt.Sprintf("%s does not see %s", l.name, o.name)
			case reach && (m.Status != cluster.StatusAlive || m.State != o.state):
				return false, fmt.Sprintf("%s sees %s %s/%s, want alive/%s", l.name, o.name, m.Status, m.State, o.state)
			case !reach && ok && m.Status == cluster.StatusAlive:
				return false, fmt.Sprintf("%s sees %s alive across the partition", l.name, o.name)
			}
		}
		for _, g := range gone {
			if m, ok := v.Member(g); ok && (m.Status == cluster.StatusAlive || m.Status == cluster.StatusLeaving) {
				return false, fmt.Sprintf("%s sees stopped node %s %s", l.name, g, m.Status)
			}
		}
		if actives[l.group] == nil {
			actives[l.group] = map[string]agree{}
		}
		for sub := range subs {
			a, _ := v.Active(sub)
			first, seen := actives[l.group][sub]
			if !seen {
				actives[l.group][sub] = agree{l.name, a.Name}
			} else if first.active != a.Name {
				return false, fmt.Sprintf("%s sees %s as active manager of %q, %s sees %s", first.by, orNone(first.active), sub, l.name, orNone(a.Name))
			}
		}
	}
	return true, ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Sees reports whether every one of the observers (node names; none means
// every running node) sees each of the named nodes with the given status.
// A node absent from a view counts as not alive.
func (c *Cluster) Sees(observers []string, status cluster.Status, names ...string) bool {
	ok, _ := c.sees(observers, status, names)
	return ok
}

// WaitSees waits until Sees holds or ctx ends. Its error wraps
// ErrNotConverged and names an observer whose view still differs, with
// what it sees.
func (c *Cluster) WaitSees(ctx context.Context, observers []string, status cluster.Status, names ...string) error {
	return c.waitFor(ctx, fmt.Sprintf("%v to be seen %v", names, status), func() (bool, string) {
		return c.sees(observers, status, names)
	})
}

// sees is Sees with, when it does not hold, why.
func (c *Cluster) sees(observers []string, status cluster.Status, names []string) (bool, string) {
	if len(observers) == 0 {
		observers = c.Names()
	}
	for _, o := range observers {
		n := c.Node(o)
		if n == nil {
			return false, o + " is not running"
		}
		v := n.View()
		for _, name := range names {
			m, ok := v.Member(name)
			if !ok {
				if status == cluster.StatusAlive {
					return false, fmt.Sprintf("%s does not see %s", o, name)
				}
				continue
			}
			if m.Status != status {
				return false, fmt.Sprintf("%s sees %s %v (%v)", o, name, m.Status, m.State)
			}
		}
	}
	return true, ""
}

// Summary describes how the named node sees the domain: one line per
// member, "name role status state", plus " active" for an active manager.
// Handy in Examples and failure messages.
func (c *Cluster) Summary(name string) string {
	n := c.Node(name)
	if n == nil {
		return name + " is not running"
	}
	v := n.View()
	var b strings.Builder
	for _, m := range v.Members() {
		r := string(m.Role)
		if m.Observer {
			r = "observer"
		}
		fmt.Fprintf(&b, "%s %s %s %s", m.Name, r, m.Status, m.State)
		if a, ok := v.Active(m.SubDomain); ok && a.Name == m.Name {
			b.WriteString(" active")
		}
		b.WriteByte('\n')
	}
	return b.String()
}
