package cluster

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/carbonkit/carbon/role"
)

func (n *Node) selfLocked() Member {
	rev, hasRev := n.selfRevision()
	return Member{
		Name:        n.cfg.NodeName,
		Domain:      n.cfg.Domain,
		SubDomain:   n.cfg.SubDomain,
		Role:        n.cfg.Role,
		Observer:    n.cfg.Observer,
		ManagerMode: n.cfg.ManagerMode,
		Addr:        net.JoinHostPort(n.advHost, strconv.Itoa(n.advPort)),
		Endpoints:   n.cfg.Endpoints,
		Properties:  n.cfg.Properties,
		Status:      StatusAlive,
		State:       n.state,
		Claim:       n.claim,
		rawClaim:    n.claim,
		Trust:       n.selfTrust(),
		Revision:    rev, HasRevision: hasRev,
	}
}

// recompute builds and publishes a new view if anything changed, and runs
// this node's part of the election; it claims only if mayClaim (see loop).
// It returns how long to wait before the election must be looked at again
// (0: no need).
func (n *Node) recompute(mayClaim bool) time.Duration {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0
	}
	self := n.selfLocked()
	list := make([]*Member, len(n.ls.names))
	for i, name := range n.ls.names {
		if name == self.Name {
			list[i] = &self // self.Claim may change below: the view sees it
		} else {
			list[i] = n.ls.members[name]
		}
	}
	for _, m := range list {
		if validClaim(m.Claim) && m.Claim > n.ls.maxSeen[m.SubDomain] {
			n.ls.maxSeen[m.SubDomain] = m.Claim
		}
	}
	var wait time.Duration
	// Not isManager: a manager whose own certificate lapsed must still run
	// decideClaim, which then withdraws its claim.
	if self.Role == role.Manager && !self.Observer {
		if mayClaim && n.ver != nil && n.ver.undecided(self.SubDomain) {
			mayClaim = false // a verdict will kick the loop
		}
		claim := decideClaim(list, &self, n.cfg.Quorum, n.ls.maxSeen[self.SubDomain], mayClaim)
		changed := claim != self.Claim
		if changed {
			n.log.Info("election", "subdomain", self.SubDomain, "claim", claim, "previous", self.Claim)
			n.obs.election(self.SubDomain, self.Claim, claim)
			if claim != 0 && claim <= n.ls.maxSeen[self.SubDomain] {
				n.log.Warn("election: the epoch round is at its bound (MaxEpochRound) and cannot rise; the claim may not be above the highest seen", "claim", claim, "highest", n.ls.maxSeen[self.SubDomain])
			}
			n.claim = claim
			self.Claim = claim
			if claim > n.ls.maxSeen[self.SubDomain] {
				n.ls.maxSeen[self.SubDomain] = claim
			}
			if claim != 0 && n.lease != nil {
				n.lease.poke()
			}
		}
		// A stand-by signs the claim it would make next ahead of it
		// (signedclaim.go), so a new highest epoch changes its tags too.
		if next := n.setNextLocked(n.ls.maxSeen[self.SubDomain]); next || changed {
			select {
			case n.tagCh <- struct{}{}:
			default:
			}
		}
		if !mayClaim && !n.phase.load().contacted() && n.cfg.Bootstrap {
			wait = time.Until(n.maySince) + time.Millisecond
		}
	}
	actives, epochs := electAll(list)
	n.elected.Store(electedWriter(list, &self, actives, n.cfg.Quorum))
	n.mu.Unlock()

	old := n.view.Load()
	if old != nil && !n.ls.dirty {
		if prev, ok := old.Member(self.Name); ok && prev.equal(&self) {
			return wait
		}
	}
	n.ls.dirty = false
	v := &View{self: self.Name, members: list, actives: actives, epochs: epochs}
	if old != nil {
		v.version = old.version + 1
	} else {
		v.version = 1
	}
	n.view.Store(v)
	n.publish(v)
	return wait
}

func (n *Node) publish(v *View) {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	for ch := range n.watchers {
		// Latest wins: a slow watcher skips views, it never blocks us.
		select {
		case <-ch:
		default:
		}
		ch <- v
	}
}

// View returns the latest view of the domain.
func (n *Node) View() *View {
	if v := n.view.Load(); v != nil {
		return v
	}
	n.mu.Lock()
	self := n.selfLocked()
	n.mu.Unlock()
	return &View{self: self.Name, members: []*Member{&self}}
}

// Watch returns a channel that receives the current view and then every
// new one. A slow reader skips intermediate views (it always gets the
// latest); it never slows the Node. The channel is closed when ctx ends
// or the Node closes.
func (n *Node) Watch(ctx context.Context) <-chan *View {
	ch := make(chan *View, 1)
	n.watchMu.Lock()
	select {
	case <-n.done:
		n.watchMu.Unlock()
		close(ch)
		return ch
	default:
	}
	n.watchers[ch] = struct{}{}
	ch <- n.View()
	n.watchMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-n.done:
		}
		n.watchMu.Lock()
		if _, ok := n.watchers[ch]; ok {
			delete(n.watchers, ch)
			close(ch)
		}
		n.watchMu.Unlock()
	}()
	return ch
}
