package cluster

import (
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// The write lease of an Active/Passive active manager.
//
// Fencing tokens protect the receivers of a write; the lease protects its
// sender. A manager that was frozen (a GC pause, SIGSTOP, a stalled VM) or
// cut off wakes up still holding its claim, while the others have declared
// it dead and elected another. So the active manager counts as writable
// only while it holds a lease: proof, renewed every quarter lease, that it
// heard from enough of the domain recently.
//
// The timing it rests on: a peer declares a member dead no sooner than
// ProbeTimeout plus memberlist's shortest suspicion timeout
// (SuspicionMult × ProbeInterval) after the member last answered, and only
// then may another manager claim. A renewal round starts at t0 (on the
// monotonic clock), pings the domain, and on enough acks extends the lease
// to t0 + SuspicionMult × ProbeInterval: every ack answered a ping sent
// after t0, so the lease ends at least ProbeTimeout before anyone could
// elect another, a margin for clock rate drift and scheduling. Enough acks
// means: with Config.Quorum, a majority of the sub-domain's managers
// (itself included); without, one other member when the view holds any
// (a node alone in its view holds the lease on its own: no one it knows of
// can elect). A round also needs the event loop to have run since the
// previous one, so a stalled loop loses the lease too.
//
// A lease that lapsed is not simply renewed: the node first exchanges its
// full state with a member that answered (a push/pull) and renews only if
// no alive manager of its sub-domain holds a higher claim; otherwise the
// loop withdraws the claim when the exchange's events reach it.
type lease struct {
	n      *Node
	length time.Duration // how long a renewal holds
	every  time.Duration // how often a round runs while the node claims
	ping   time.Duration // how long one ping waits (memberlist's ProbeTimeout)

	until atomic.Int64 // end of the lease on n's monotonic clock; 0: none
	beat  atomic.Int64 // when the loop last ran, same clock
	wake  chan struct{}

	// owned by run's goroutine
	lastRound int64
}

func newLease(n *Node, ml *memberlist.Config) *lease {
	length := time.Duration(ml.SuspicionMult) * ml.ProbeInterval
	return &lease{
		n:      n,
		length: length,
		every:  length / 4,
		ping:   ml.ProbeTimeout,
		wake:   make(chan struct{}, 1),
	}
}

// mono reads the Node's monotonic clock: nanoseconds since Join, never 0.
func (n *Node) mono() int64 { return int64(time.Since(n.origin)) + 1 }

// held reports whether the lease is held now.
func (l *lease) held() bool { return l.n.mono() < l.until.Load() }

// poke asks run for a round now (a new claim).
func (l *lease) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run renews the lease while the node claims. It is the one goroutine that
// writes until; it never blocks the loop.
func (l *lease) run() {
	defer l.n.wg.Done()
	t := time.NewTimer(l.every)
	defer t.Stop()
	for {
		select {
		case <-l.n.stop:
			return
		case <-l.wake:
		case <-t.C:
		}
		if l.n.currentClaim() == 0 {
			l.until.Store(0)
			l.lastRound = 0
		} else {
			l.round()
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(l.every)
	}
}

// round runs one renewal round.
func (l *lease) round() {
	n := l.n
	t0 := n.mono()
	// The loop must have run since the last round; poke it so that it runs
	// before the next one.
	stalled := l.lastRound != 0 && l.beat.Load() < l.lastRound
	l.lastRound = t0
	n.poke()
	if stalled {
		return
	}
	lapsed := l.until.Load() <= t0
	targets, need := l.targets()
	// The lease is renewed as soon as enough acks are in, not when the last
	// ping ends: a member that died and is not yet declared dead answers
	// no ping, and waiting out its timeout (ProbeTimeout, longer than a
	// quarter lease on ProfileLocal) would let the lease lapse between
	// rounds while the domain is healthy. The round still collects every
	// answer before it returns, so no ping outlives it.
	acks := l.pingAll(targets)
	managers, any := 0, 0
	var peer string
	renewed := false
	try := func() {
		if renewed {
			return
		}
		if n.cfg.Quorum > 0 {
			if managers < need {
				return
			}
		} else if any < need {
			return
		}
		renewed = true
		l.renew(t0, lapsed, peer)
	}
	try()
	for range targets {
		i := <-acks
		if i < 0 {
			continue
		}
		any++
		peer = targets[i].Addr
		if isManager(&targets[i]) && targets[i].SubDomain == n.cfg.SubDomain {
			managers++
		}
		try()
	}
}

// renew extends the lease to t0 plus its length, once a round started at
// t0 has enough acks; peer is a member that answered ("" when none was
// needed). After a lapse it first exchanges state with peer and renews only
// if no higher claim shows up.
func (l *lease) renew(t0 int64, lapsed bool, peer string) {
	n := l.n
	if lapsed && peer != "" {
		if _, err := n.serf.Memberlist().Join([]string{peer}); err != nil {
			n.log.Debug("lease: state exchange after a lapse failed", "peer", peer, "err", err)
			return
		}
		if n.higherClaim() {
			n.poke() // the loop withdraws once the exchange's events reach it
			return
		}
	}
	if n.currentClaim() == 0 {
		return
	}
	if lapsed {
		n.log.Info("write lease held again", "after", time.Duration(t0-l.until.Load()))
	}
	l.until.Store(t0 + int64(l.length))
}

// targets returns the members a round pings, and how many acks it needs:
// every alive manager of the node's sub-domain, and up to three other
// alive members at random. With a quorum, need counts managers.
func (l *lease) targets() ([]Member, int) {
	n := l.n
	var mgrs, others []Member
	for _, m := range n.View().members {
		if m.Name == n.cfg.NodeName || m.Status != StatusAlive {
			continue
		}
		if isManager(m) && m.SubDomain == n.cfg.SubDomain {
			mgrs = append(mgrs, *m)
		} else {
			others = append(others, *m)
		}
	}
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	out := append(mgrs, others[:min(len(others), 3)]...)
	if q := n.cfg.Quorum; q > 0 {
		return out, q / 2 // a majority with this node: q/2+1
	}
	if len(out) == 0 {
		return nil, 0
	}
	return out, 1
}

// pingAll pings every target at once and sends, for each, the target's
// index once it answered in time or -1 once its ping failed: one value per
// target on a channel that holds them all.
func (l *lease) pingAll(targets []Member) <-chan int {
	out := make(chan int, len(targets))
	ml := l.n.serf.Memberlist()
	for i := range targets {
		go func() {
			if _, err := ml.Ping(targets[i].Name, addrString(targets[i].Addr)); err != nil {
				out <- -1
				return
			}
			out <- i
		}()
	}
	return out
}

// higherClaim reports whether serf's members hold an alive manager of this
// node's sub-domain whose valid claim beats this node's. It reads serf's
// members, fresher than the loop's view, so with a trust root their claims
// are not checked yet: it errs towards counting them (a false "higher"
// only delays the renewal) except for members that can never be managers:
// no identity endpoint, or a proof of their identity already failed.
func (n *Node) higherClaim() bool {
	own := n.currentClaim()
	ms := n.serf.Members()
	for i := range ms {
		if ms[i].Name == n.cfg.NodeName || ms[i].Status != serf.StatusAlive {
			continue
		}
		m, ok := n.ofDomain(&ms[i])
		if !ok || !isManager(&m) || m.SubDomain != n.cfg.SubDomain || m.ManagerMode != ActivePassive {
			continue
		}
		if n.ver != nil && n.provenNotManager(&m) {
			continue
		}
		if validClaim(m.Claim) && (m.Claim > own || (m.Claim == own && m.Name < n.cfg.NodeName)) {
			return true
		}
	}
	return false
}

// provenNotManager reports whether m, as serf's tags give it, is a member
// this node's trust root refuses as a manager: it gives no identity
// endpoint, or the view holds it, at the same address and identity, with
// a failed proof. Any goroutine.
func (n *Node) provenNotManager(m *Member) bool {
	key, ok := n.ver.keyOf(m)
	if !ok {
		return true
	}
	vm, ok := n.View().Member(m.Name)
	if !ok || !vm.refused {
		return false
	}
	vkey, ok := n.ver.keyOf(&vm)
	return ok && vkey == key
}

// currentClaim is the node's own claim epoch, 0 if it does not claim.
func (n *Node) currentClaim() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.claim
}

// addrString is a "host:port" as the net.Addr memberlist's Ping takes.
type addrString string

func (a addrString) Network() string { return "udp" }
func (a addrString) String() string  { return string(a) }

var _ net.Addr = addrString("")
