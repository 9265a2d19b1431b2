package carboncli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/carbonkit/carbon/cluster"
)

// Change is one line of watch: a change of one member, or of the active
// manager of a sub-domain. With -json each is a JSON object on a line.
type Change struct {
	Time time.Time `json:"time"`
	// Kind is "present" (the members when watch starts), "joined",
	// "status" (alive, leaving, left, failed), "state" (starting,
	// serving, draining), "revision", "gone" (reaped from the view) or
	// "active" (a new active manager of SubDomain, Member; From the old).
	Kind      string `json:"change"`
	Member    string `json:"member"`
	SubDomain string `json:"sub_domain,omitempty"`
	Role      string `json:"role,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Epoch     uint64 `json:"epoch,omitempty"`
}

func (c Change) String() string {
	s := c.Time.Format("15:04:05.000") + " " + c.Kind + " " + c.Member
	switch c.Kind {
	case "present", "joined":
		s += fmt.Sprintf(" (%s in %s, %s)", c.Role, dash(c.SubDomain), c.To)
	case "active":
		s += fmt.Sprintf(" of %s, epoch %d (was %s)", c.SubDomain, c.Epoch, dash(c.From))
	case "gone":
	default:
		s += ": " + dash(c.From) + " -> " + c.To
	}
	return s
}

func memberRole(m cluster.Member) string {
	if m.Observer {
		return "observer"
	}
	return m.Role.String()
}

func revisionOf(m cluster.Member) string {
	if !m.HasRevision {
		return ""
	}
	return m.Revision.String()
}

// diff lists the changes from old to cur (old nil: every member is
// present).
func diff(old, cur *cluster.View, self string, now time.Time) []Change {
	var out []Change
	seen := map[string]bool{}
	for _, m := range cur.Members() {
		if m.Name == self {
			continue
		}
		seen[m.Name] = true
		c := Change{Time: now, Member: m.Name, SubDomain: m.SubDomain, Role: memberRole(m)}
		var p cluster.Member
		ok := false
		if old != nil {
			p, ok = old.Member(m.Name)
		}
		if !ok {
			c.Kind, c.To = "joined", m.Status.String()+", "+m.State.String()
			if old == nil {
				c.Kind = "present"
			}
			out = append(out, c)
			continue
		}
		if p.Status != m.Status {
			c.Kind, c.From, c.To = "status", p.Status.String(), m.Status.String()
			out = append(out, c)
		}
		if p.State != m.State {
			c.Kind, c.From, c.To = "state", p.State.String(), m.State.String()
			out = append(out, c)
		}
		if revisionOf(p) != revisionOf(m) {
			c.Kind, c.From, c.To = "revision", revisionOf(p), revisionOf(m)
			out = append(out, c)
		}
	}
	if old != nil {
		for _, p := range old.Members() {
			if !seen[p.Name] && p.Name != self {
				out = append(out, Change{Time: now, Kind: "gone", Member: p.Name, SubDomain: p.SubDomain, Role: memberRole(p)})
			}
		}
	}
	subs := map[string]bool{}
	for _, m := range cur.Members() {
		subs[m.SubDomain] = true
	}
	if old != nil {
		for _, m := range old.Members() {
			subs[m.SubDomain] = true
		}
	}
	names := make([]string, 0, len(subs))
	for s := range subs {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, sub := range names {
		a, ok := cur.Active(sub)
		var was cluster.Member
		wasOK := false
		if old != nil {
			was, wasOK = old.Active(sub)
		}
		if ok && (!wasOK || was.Name != a.Name || old.Epoch(sub) != cur.Epoch(sub)) {
			c := Change{Time: now, Kind: "active", Member: a.Name, SubDomain: sub, Epoch: cur.Epoch(sub), Role: "manager"}
			if wasOK {
				c.From = was.Name
			}
			out = append(out, c)
		}
	}
	return out
}

// watch prints changes as the node sees them, until ctx ends.
func watch(ctx context.Context, e *env) error {
	var last *cluster.View
	enc := json.NewEncoder(e.out)
	for v := range e.n.Watch(ctx) {
		for _, c := range diff(last, v, e.n.Name(), time.Now().UTC()) {
			if e.o.json {
				if err := enc.Encode(c); err != nil {
					return err
				}
			} else if _, err := fmt.Fprintln(e.out, c); err != nil {
				return err
			}
		}
		last = v
	}
	return nil
}
