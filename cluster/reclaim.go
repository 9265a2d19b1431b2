package cluster

import (
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// A process that comes back under a known name at a new address (a
// StatefulSet's pod has a new IP after a restart) is refused by every
// member that still holds the old address as alive or suspect, and by
// those that declared it dead only moments ago (memberlist's
// DeadNodeReclaimTime). Memberlist sends nothing to the new address
// meanwhile (its probes and gossip go to the old one), so a member learns
// the new one only from a state exchange the new process starts: on a
// LAN the periodic one is 30 s or more away. So while a member's state
// lists this node's name at another address, the node exchanges state
// with a member about every retry interval (ProbeInterval on the timing
// profile); once the old address has been declared dead, the next
// exchange makes that member take the new one and gossip it on.

// noteSelf is called by the merge delegate for this node's own entry in
// a joined member's state.
func (n *Node) noteSelf(p *memberlist.Node) {
	v := n.view.Load()
	if v == nil || p.State == memberlist.StateLeft {
		return // no address of our own yet; a left entry gives way at once
	}
	if net.JoinHostPort(p.Addr.String(), strconv.Itoa(int(p.Port))) != v.Self().Addr {
		n.staleSelf.Store(true)
	}
}

// nameReclaim is the retryJoin goroutine's record of how long a member
// has listed this node's name at another address.
type nameReclaim struct {
	since, last time.Time
	warned      bool
}

// reclaimPatience is how long the node exchanges state at every retry
// tick while its name is held elsewhere. A restart is over by then (the
// old address is declared dead and then forgotten within a minute on LAN
// timings); past it, another live process most likely has the same name,
// and the node warns once and exchanges only every reclaimSlowEvery.
const (
	reclaimPatience  = time.Minute
	reclaimSlowEvery = 10 * time.Second
)

// step exchanges state with a random alive member if a member's state
// last seen listed this node's name at another address. The exchange's
// merge sets the mark again while that is still so.
func (r *nameReclaim) step(n *Node) {
	if !n.staleSelf.Swap(false) {
		*r = nameReclaim{}
		return
	}
	now := time.Now()
	if r.since.IsZero() {
		r.since = now
	}
	if now.Sub(r.since) > reclaimPatience {
		if !r.warned {
			r.warned = true
			n.log.Warn("members have held this node's name at another address for over a minute: is another process running with the same NodeName?", "since", r.since)
		}
		if now.Sub(r.last) < reclaimSlowEvery {
			n.staleSelf.Store(true) // still to be done, later
			return
		}
	}
	r.last = now
	var peers []string
	for _, m := range n.View().members {
		if m.Status == StatusAlive && m.Name != n.cfg.NodeName {
			peers = append(peers, m.Addr)
		}
	}
	if len(peers) == 0 {
		return
	}
	peer := peers[rand.N(len(peers))]
	n.log.Debug("a member holds this node's name at another address; exchanging state", "peer", peer)
	if err := n.exchange([]string{peer}); err != nil {
		n.log.Debug("state exchange to claim this node's address failed", "peer", peer, "err", err)
	}
}
