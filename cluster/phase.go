package cluster

import (
	"sync/atomic"
	"time"
)

// joinPhase is where a Node stands on its way to being allowed to claim
// (to make itself the active manager). Two things must be true before a
// node in contact with its domain may claim: its first join attempt is
// over (so it does not elect itself on a view that lacks the members the
// join is bringing), and its view holds every member serf knew when it
// made contact (see Node.contacted). They happen in either order, on
// different goroutines, so the phase names every combination:
//
//	phaseJoining ──contact──▶ phaseJoiningContacted ──caughtUp──▶ phaseJoiningCaughtUp
//	     │                          │                                   │
//	 attemptOver               attemptOver                         attemptOver
//	     ▼                          ▼                                   ▼
//	phaseAlone ────contact──▶ phaseContacted ─────caughtUp──────▶ phaseCaughtUp
//
// No other transition exists: a phase never goes back, contact comes
// once, and a view catches up only after contact.
type joinPhase uint32

const (
	// phaseJoining: the first join attempt is under way; no seed reached yet.
	phaseJoining joinPhase = iota
	// phaseJoiningContacted: a seed was reached during the first attempt,
	// which is not over yet; the view is catching up.
	phaseJoiningContacted
	// phaseJoiningCaughtUp: contact made and the view caught up, but the
	// first attempt is not over yet.
	phaseJoiningCaughtUp
	// phaseAlone: the first attempt is over and no seed answered; the node
	// runs alone and retries (it may claim only with Config.Bootstrap,
	// after the election delay).
	phaseAlone
	// phaseContacted: in contact with the domain (or needing no seed),
	// the view still catching up.
	phaseContacted
	// phaseCaughtUp: in contact, the view holds what serf knew at contact,
	// the first attempt over: the node may claim.
	phaseCaughtUp
)

func (p joinPhase) String() string {
	switch p {
	case phaseJoining:
		return "joining"
	case phaseJoiningContacted:
		return "joining-contacted"
	case phaseJoiningCaughtUp:
		return "joining-caught-up"
	case phaseAlone:
		return "alone"
	case phaseContacted:
		return "contacted"
	case phaseCaughtUp:
		return "caught-up"
	}
	return "phase(?)"
}

// joinEvent moves a joinPhase on.
type joinEvent uint8

const (
	evContact     joinEvent = iota // Node.contacted: a seed answered, or there is none
	evCaughtUp                     // Node.checkCaughtUp: the view holds the members awaited
	evAttemptOver                  // Node.start: the first join attempt has ended
)

// joinTransitions is the table of allowed transitions; a missing entry is
// an illegal one.
var joinTransitions = map[joinPhase]map[joinEvent]joinPhase{
	phaseJoining:          {evContact: phaseJoiningContacted, evAttemptOver: phaseAlone},
	phaseJoiningContacted: {evCaughtUp: phaseJoiningCaughtUp, evAttemptOver: phaseContacted},
	phaseJoiningCaughtUp:  {evAttemptOver: phaseCaughtUp},
	phaseAlone:            {evContact: phaseContacted},
	phaseContacted:        {evCaughtUp: phaseCaughtUp},
}

// contacted reports whether the node has made contact with its domain.
func (p joinPhase) contacted() bool { return p != phaseJoining && p != phaseAlone }

// attemptOver reports whether the first join attempt has ended.
func (p joinPhase) attemptOver() bool { return p >= phaseAlone }

// caughtUp reports whether the view holds what serf knew at contact.
func (p joinPhase) caughtUp() bool { return p == phaseJoiningCaughtUp || p == phaseCaughtUp }

// phaseState holds a Node's joinPhase; any goroutine may read and advance
// it.
type phaseState struct{ v atomic.Uint32 }

func (s *phaseState) load() joinPhase { return joinPhase(s.v.Load()) }

// advance applies ev to the current phase and reports whether it moved
// the phase; an event with no transition from the current phase (a second
// contact, a catch-up before contact) is refused and changes nothing.
func (s *phaseState) advance(ev joinEvent) bool {
	for {
		cur := s.load()
		next, ok := joinTransitions[cur][ev]
		if !ok {
			return false
		}
		if s.v.CompareAndSwap(uint32(cur), uint32(next)) {
			return true
		}
	}
}

// contacted records that the node reached its domain (or needs no seed),
// the first time it does. From then on the node may claim only once its
// view holds every member of the domain serf knew at that moment: serf
// hands its events on through a goroutine of its own, so when Join
// returns some of the members it brought may not have reached the loop
// yet, and a manager deciding on such a view would claim over a live
// active one (TestActiveIsSticky failed that way). Not for the loop's
// goroutine: serf's Members waits for a lock serf holds while it sends
// events to the loop.
func (n *Node) contacted() {
	if !n.phase.advance(evContact) {
		return
	}
	ms := n.serf.Members()
	names := make([]string, 0, len(ms))
	for i := range ms {
		if ms[i].Name == n.cfg.NodeName {
			continue
		}
		if m, ok := n.ofDomain(&ms[i]); ok {
			names = append(names, m.Name)
		}
	}
	n.catchUp <- names // never nil (the loop reads nil as nothing awaited); the only send: contact advances once
}

// catchUpLimit bounds how long a node that made contact waits for its
// view to hold the members serf knew then before it may claim anyway.
const catchUpLimit = 5 * time.Second

// checkCaughtUp marks the node caught up once the view holds every member
// awaited since contact; it returns how long to wait before checking
// again (0: nothing awaited). Loop goroutine only.
func (n *Node) checkCaughtUp() time.Duration {
	ls := &n.ls
	if ls.awaiting == nil {
		return 0
	}
	for _, name := range ls.awaiting {
		if _, ok := ls.members[name]; !ok {
			if left := time.Until(ls.awaitUntil); left > 0 {
				return left
			}
			n.log.Warn("the view still lacks a member serf knew at contact; a manager may claim from now on", "missing", name, "after", catchUpLimit)
			break
		}
	}
	ls.awaiting = nil
	n.phase.advance(evCaughtUp)
	return 0
}

// mayClaimNow reports whether the node may make a new claim: not during
// its first join attempt; once in contact with its domain, only when
// caught up (see contacted); alone with seeds it cannot reach, only with
// Config.Bootstrap and after the election delay.
func (n *Node) mayClaimNow() bool {
	p := n.phase.load()
	if !p.attemptOver() {
		return false
	}
	if p.contacted() {
		return p.caughtUp()
	}
	if !n.cfg.Bootstrap {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !time.Now().Before(n.maySince)
}
