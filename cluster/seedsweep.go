package cluster

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// seedSweep re-resolves the seeds now and then while the node has
// contact, and joins the addresses that no member it knows holds.
//
// Once a node is joined, gossip tells it of every member that joins its
// pool, so seeds are not needed for that. They are needed when pools form
// apart: nodes of a Kubernetes StatefulSet started in parallel each
// resolve the headless Service while it lists only some of them, and two
// groups can each join among themselves. Each group then has contact, so
// neither retries its seeds, and the split would last for ever (two active
// managers without a Quorum). A periodic look at the seeds joins such a
// group to the rest as soon as the name lists one of its members.
//
// A seedSweep is owned by the retryJoin goroutine.
type seedSweep struct {
	every time.Duration
	next  time.Time
}

func newSeedSweep(p Profile) *seedSweep {
	every := 10 * time.Second
	switch p {
	case ProfileLocal:
		every = time.Second
	case ProfileWAN:
		every = 30 * time.Second
	}
	s := &seedSweep{every: every}
	s.schedule()
	return s
}

// schedule sets the next sweep between 0.5 and 1.5 intervals from now:
// nodes started together must not look up the name in step.
func (s *seedSweep) schedule() {
	s.next = time.Now().Add(s.every/2 + rand.N(s.every+1))
}

// maybe sweeps if the time has come. It returns when the sweep is over or
// the node stops.
func (s *seedSweep) maybe(n *Node) {
	if time.Now().Before(s.next) {
		return
	}
	defer s.schedule()
	targets := n.unknownSeeds()
	if len(targets) == 0 {
		return
	}
	n.log.Debug("seeds name addresses no member holds; joining them", "addrs", targets)
	if err := n.exchange(targets); err != nil {
		n.log.Debug("joining seeds' new addresses failed", "addrs", targets, "err", err)
	}
}

// exchange joins addrs: a full state exchange with each. As
// syncAfterJoin: through serf when the domain knew this node before (it
// announces a join at the current Lamport time), else a memberlist
// push/pull alone, which merges both sides' members and serf state. It
// returns when the exchange is over or the node stops.
func (n *Node) exchange(targets []string) error {
	announce := n.rejoined.Load()
	done := make(chan error, 1)
	go func() {
		var err error
		if announce {
			_, err = n.serf.Join(targets, false)
		} else {
			_, err = n.serf.Memberlist().Join(targets)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-n.stop:
		// The join ends on its own once Close has shut the transport down.
		return ErrClosed
	}
}

// unknownSeeds resolves the seeds and returns their addresses that are
// neither this node's nor held by a member that is alive, leaving or
// failed (serf reconnects to failed members itself). An IP seed that is
// down is retried the same way, which costs one refused or timed-out
// connection per sweep.
func (n *Node) unknownSeeds() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	addrs := n.resolveSeeds(ctx)
	known := map[string]bool{net.JoinHostPort(n.advHost, strconv.Itoa(n.advPort)): true}
	for _, m := range n.View().members {
		if m.Status != StatusLeft {
			known[m.Addr] = true
		}
	}
	var out []string
	for _, a := range addrs {
		if !known[a] {
			known[a] = true
			out = append(out, a)
		}
	}
	return out
}
