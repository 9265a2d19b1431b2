package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"time"
)

// resolveSeeds resolves every seed to all its addresses.
func (n *Node) resolveSeeds(ctx context.Context) []string {
	var out []string
	for _, s := range n.cfg.Seeds {
		host, port, _ := splitAddr(s, DefaultPort)
		if ip := net.ParseIP(host); ip != nil {
			// As a Member's Addr spells it (syncAfterJoin compares them).
			out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
			continue
		}
		ips, err := n.lookupSeed(ctx, host)
		if err != nil {
			n.log.Debug("seed does not resolve", "seed", s, "err", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		}
	}
	return out
}

// joinSeeds joins every seed's address other than this node's, and returns
// those addresses.
func (n *Node) joinSeeds(ctx context.Context) ([]string, error) {
	addrs := n.resolveSeeds(ctx)
	self := net.JoinHostPort(n.advHost, strconv.Itoa(n.advPort))
	var targets []string
	for _, a := range addrs {
		if a != self {
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		if len(addrs) > 0 {
			n.contacted() // we are the only seed
			return nil, nil
		}
		return nil, errors.New("cluster: no seed resolves")
	}
	type result struct {
		k   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		k, err := n.serf.Join(targets, true)
		ch <- result{k, err}
	}()
	select {
	case r := <-ch:
		if r.k > 0 {
			n.contacted()
			return targets, nil
		}
		return targets, r.err
	case <-ctx.Done():
		return targets, ctx.Err()
	}
}

// syncRounds are when, in gossip intervals after its join, a node
// exchanges its full state with a member (syncAfterJoin).
var syncRounds = []int{1, 3, 8, 20, 50}

// syncAfterJoin exchanges this node's full state with an alive member (a
// memberlist push/pull, as the periodic anti-entropy does) about a gossip
// interval after the join, then four more times, further apart
// (syncRounds, each jittered to between half and all of its wait; the last
// 5 to 10 s after the join on LAN timings). When many nodes start at once
// (a deployment rolling out), each learns from its seeds only the members
// that had joined before it; the rest reach it by gossip, and a member
// whose alive message ran out of retransmissions before reaching it stays
// unknown until the periodic push/pull, 30 s to minutes away on LAN
// timings. These exchanges close that gap within seconds, at the cost of
// five state transfers per join.
//
// The first exchange goes to one of its seeds (seeds: the addresses the join
// contacted) while one is alive, the others to a random member. Every
// joiner exchanged state with every seed, so a seed knows all the nodes
// that joined through it until then, where a random member may have joined
// a moment ago and know little: nodes started at once through the same
// seeds then all see each other after this first exchange. It adds one
// exchange per joiner to a seed, which served one for the join already.
// The first exchange comes early because most of the gap is closed by it;
// the last one catches members that joined after the others (figures in
// docs/PERFORMANCE.md).
func (n *Node) syncAfterJoin(gossip time.Duration, seeds []string) {
	defer n.wg.Done()
	prev := 0
	for i, r := range syncRounds {
		d := time.Duration(r-prev) * gossip
		prev = r
		t := time.NewTimer(d/2 + rand.N(d/2+1)) // jittered: joiners must not sync in step
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		var peers, seedPeers []string
		for _, m := range n.View().members {
			if m.Status == StatusAlive && m.Name != n.cfg.NodeName {
				peers = append(peers, m.Addr)
				if i == 0 && slices.Contains(seeds, m.Addr) {
					seedPeers = append(seedPeers, m.Addr)
				}
			}
		}
		if len(seedPeers) > 0 {
			peers = seedPeers
		}
		if len(peers) == 0 {
			continue
		}
		peer := peers[rand.N(len(peers))]
		// Close must not wait for an exchange with a host that does not
		// answer (up to memberlist's TCP timeout): the exchange ends on
		// its own once Close has shut the transport down.
		//
		// A node the domain knew before (a restart: some member listed
		// it as left or dead) exchanges through serf, others through
		// memberlist alone. serf.Join also broadcasts a join intent at the
		// current Lamport time. A node restarted moments after it left
		// announces its join at a time no later than serf's stand-in for
		// its leave (the leave's time plus one, which a member that has
		// not yet seen it alive again sends for every left member in a
		// push/pull): whoever merges that state marks it leaving again,
		// and only a later intent undoes that (TestRollingRestartConverges
		// failed that way). A fresh node is in nobody's left list and
		// sends no extra intents: each one is news to every member, so it
		// is gossiped to all, and one per exchange would make nodes joining
		// at once spend much of their CPU decoding intents.
		// ignoreOld is false: with true, serf would drop every cluster
		// message older than the peer's event clock, messages in flight
		// included; events from before the first join stay dropped
		// (serf's eventMinTime), and the others a member has seen are
		// not delivered twice.
		announce := n.rejoined.Load()
		done := make(chan error, 1)
		go func() {
			var err error
			if announce {
				_, err = n.serf.Join([]string{peer}, false)
			} else {
				_, err = n.serf.Memberlist().Join([]string{peer})
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				n.log.Debug("state exchange after join failed", "peer", peer, "err", err)
			}
		case <-n.stop:
			return
		}
	}
}

// retryJoin keeps joining the seeds, with backoff, whenever the node sees
// no other alive member.
func (n *Node) retryJoin() {
	defer n.wg.Done()
	base := 100 * time.Millisecond
	if n.cfg.Profile != ProfileLocal {
		base = time.Second
	}
	backoff := base
	sweep := newSeedSweep(n.cfg.Profile)
	var reclaim nameReclaim
	for {
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if n.aliveOthers() > 0 {
			n.contacted()
			backoff = base
			sweep.maybe(n)
			reclaim.step(n)
			continue
		}
		if !n.mayClaimNow() {
			n.poke() // the election delay may have passed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := n.joinSeeds(ctx)
		cancel()
		if err == nil && n.aliveOthers() > 0 {
			backoff = base
			continue
		}
		backoff = min(backoff*2, 30*base)
	}
}

func (n *Node) aliveOthers() int {
	c := 0
	for _, m := range n.View().members {
		if m.Name != n.cfg.NodeName && m.Status == StatusAlive {
			c++
		}
	}
	return c
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}
