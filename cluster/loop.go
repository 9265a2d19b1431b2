package cluster

import (
	"slices"
	"time"

	"github.com/hashicorp/serf/serf"
)

// loopState is the state that only the loop goroutine touches (loop and
// what it calls: handle, apply, recompute, checkCaughtUp, answer, and the
// verifier's accept, annotate, forget, undecided and reproveAll). It has
// no lock because no other goroutine reads or writes it; others see its
// results only through the published View.
type loopState struct {
	dirty   bool               // members changed since the last view
	leaving int                // members whose status is StatusLeaving
	members map[string]*Member // immutable once stored: views share them
	names   []string           // sorted names of members, self included
	// maxSeen is the highest valid claim seen per sub-domain.
	maxSeen map[string]uint64
	// awaiting holds the members serf knew when the node made contact
	// (see contacted) until the view has them all, or until awaitUntil.
	awaiting   []string
	awaitUntil time.Time
}

func newLoopState(self string) loopState {
	return loopState{
		members: map[string]*Member{},
		names:   []string{self},
		maxSeen: map[string]uint64{},
	}
}

// loop is the one goroutine that reads serf's events: it never blocks on
// anyone else, so gossip never stalls.
func (n *Node) loop() {
	defer n.wg.Done()
	var timer *time.Timer
	var timerC, recheckC <-chan time.Time
	rechecking := false
	for {
		select {
		case <-n.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case e := <-n.events:
			n.handle(e)
		case <-n.kick:
		case <-timerC:
			timerC = nil
		case <-recheckC:
			recheckC, rechecking = nil, true
			// Not on this goroutine: serf sends events while holding the
			// lock Members takes, and this loop must keep reading them.
			go func() { n.recheck <- n.serf.Members() }()
		case ms := <-n.recheck:
			rechecking = false
			n.recheckLeaving(ms)
		case names := <-n.catchUp:
			n.ls.awaiting, n.ls.awaitUntil = names, time.Now().Add(catchUpLimit)
		case vd := <-n.verdicts():
			n.ver.accept(vd)
		}
		// Take every event already queued before deciding anything: a
		// kick right after a join must not run the election on a view
		// that lacks the members the join just brought.
	drain:
		for range 1024 {
			select {
			case e := <-n.events:
				n.handle(e)
			default:
				break drain
			}
		}
		if n.ls.leaving > 0 && recheckC == nil && !rechecking {
			recheckC = time.After(n.recheckEvery)
		}
		if n.lease != nil {
			n.lease.beat.Store(n.mono())
		}
		awaitWait := n.checkCaughtUp()
		wait := n.recompute(n.mayClaimNow())
		if awaitWait > 0 && (wait == 0 || awaitWait < wait) {
			wait = awaitWait
		}
		if wait > 0 && timerC == nil {
			timer = time.NewTimer(wait)
			timerC = timer.C
		}
	}
}

// recheckLeaving takes the current status of the members the view shows
// leaving from ms, serf's members. serf sends no event when a member it
// marked leaving turns alive again (a join intent newer than the leave: a
// node restarted right after it left, which serf marks leaving again
// when a member that has not yet seen it back sends it as left in a
// state exchange), so a view would otherwise show it leaving until its
// next update. A real leave ends in a leave event instead.
func (n *Node) recheckLeaving(ms []serf.Member) {
	for i := range ms {
		if m, ok := n.ls.members[ms[i].Name]; ok && m.Status == StatusLeaving {
			n.apply(&ms[i])
		}
	}
}

func (n *Node) handle(e serf.Event) {
	switch e := e.(type) {
	case serf.MemberEvent:
		n.obs.event(e.Type.String(), len(e.Members))
		for i := range e.Members {
			sm := &e.Members[i]
			if sm.Name == n.cfg.NodeName {
				continue
			}
			if e.Type == serf.EventMemberReap {
				if old, ok := n.ls.members[sm.Name]; ok {
					if old.Status == StatusLeaving {
						n.ls.leaving--
					}
					delete(n.ls.members, sm.Name)
					if n.ver != nil {
						n.ver.forget(sm.Name)
					}
					if i, found := slices.BinarySearch(n.ls.names, sm.Name); found {
						n.ls.names = slices.Delete(n.ls.names, i, i+1)
					}
					n.ls.dirty = true
				}
				continue
			}
			n.apply(sm)
		}
	case serf.UserEvent:
		n.msgs.deliver(e)
	case *serf.Query:
		n.answer(e)
	}
}

// ofDomain is serf's member sm as a Member, if it is one of this domain:
// what a view holds.
func (n *Node) ofDomain(sm *serf.Member) (Member, bool) {
	m, ok := memberFromSerf(sm)
	return m, ok && m.Domain == n.cfg.Domain
}

// apply stores serf's member sm in the view's members, if it is of this
// domain and anything changed.
func (n *Node) apply(sm *serf.Member) {
	m, ok := n.ofDomain(sm)
	if !ok {
		return
	}
	if n.ver != nil {
		n.ver.annotate(&m)
	}
	old, known := n.ls.members[sm.Name]
	if !known {
		i, _ := slices.BinarySearch(n.ls.names, sm.Name)
		n.ls.names = slices.Insert(n.ls.names, i, sm.Name)
	}
	if known && old.equal(&m) {
		return
	}
	if known && old.Status == StatusLeaving {
		n.ls.leaving--
	}
	if m.Status == StatusLeaving {
		n.ls.leaving++
	}
	n.ls.members[sm.Name] = &m
	n.ls.dirty = true
}

// verdicts is the channel of proofs for the loop; nil (never ready)
// without a trust root.
func (n *Node) verdicts() <-chan verdict {
	if n.ver == nil {
		return nil
	}
	return n.ver.results
}
