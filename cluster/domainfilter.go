package cluster

import (
	"fmt"

	"github.com/hashicorp/memberlist"

	"github.com/carbonkit/carbon/internal/tags"
)

// domainFilter keeps members of other domains out of the gossip pool. It
// is memberlist's merge and alive delegate rather than serf's merge
// delegate: serf would decode every member's tags for it, on every alive
// message received (duplicates included), a large share of the CPU of
// many nodes joining at once; the filter reads the domain tag alone, in
// place, without allocating.
type domainFilter struct{ n *Node }

// NotifyMerge implements memberlist.MergeDelegate: a join's remote state.
// It also notes whether the state lists this node as left or dead (see
// Node.rejoined).
func (d *domainFilter) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.check(p); err != nil {
			return err
		}
		if p.Name == d.n.cfg.NodeName && p.State != memberlist.StateAlive {
			d.n.rejoined.Store(true)
		}
		if p.Name == d.n.cfg.NodeName {
			d.n.noteSelf(p)
		}
	}
	return nil
}

// NotifyAlive implements memberlist.AliveDelegate: every member learned or
// refreshed by gossip.
func (d *domainFilter) NotifyAlive(p *memberlist.Node) error { return d.check(p) }

func (d *domainFilter) check(p *memberlist.Node) error {
	if tags.HasDomain(p.Meta, d.n.cfg.Domain) {
		return nil
	}
	got, _ := tags.Domain(p.Meta)
	d.n.rejection.Store(&got)
	d.n.obs.rejected()
	return fmt.Errorf("%w: member %q is in domain %q, not %q", ErrForeignDomain, p.Name, got, d.n.cfg.Domain)
}
