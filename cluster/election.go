package cluster

import (
	"hash/fnv"

	"github.com/carbonkit/carbon/role"
)

// The Active/Passive election.
//
// Every member computes the active manager of a sub-domain from its own
// view with the same rule (see electAll): the alive, non-draining manager
// whose claim carries the highest epoch. A claim is a tag, so it travels
// with serf's gossip and survives in the member lists of every peer. Only
// when no live claim exists does a manager claim: the lowest-named
// candidate, with an epoch above every epoch it has seen. That makes the
// choice sticky (a live claimant keeps its place whoever joins) and makes
// split brains heal by themselves: when two claimants meet, the lower
// epoch sees the higher one and withdraws.
//
// An epoch is round<<16 | disc, where round counts elections and disc is
// 16 bits of a hash of the claimant's name, so that two managers elected in
// the same round on the two sides of a partition still hold different
// epochs and the higher one wins deterministically.

const epochDiscBits = 16

// MaxEpochRound bounds the round of a claim. A claim above it is refused
// (never elected, never counted as seen): no domain holds 2^40 elections,
// so such a claim is forged or corrupt, and taking it as the highest seen
// would let the next round overflow 64 bits and run the epochs backwards.
const MaxEpochRound = 1 << 40

// validClaim reports whether a claim epoch may be elected: non-zero and
// within MaxEpochRound.
func validClaim(epoch uint64) bool {
	return epoch != 0 && epoch>>epochDiscBits <= MaxEpochRound
}

// nextEpoch returns an epoch greater than maxSeen for the named claimant;
// maxSeen holds valid claims only, so the round never overflows. At the
// bound (never reached by elections alone) the round saturates: ok is
// false, and the caller reports it.
func nextEpoch(maxSeen uint64, name string) (epoch uint64, ok bool) {
	h := fnv.New32a()
	h.Write([]byte(name))
	// The discriminator is never 0, so no name yields a round's lowest
	// epoch and no claim is ever 0.
	disc := uint64(h.Sum32() & (1<<epochDiscBits - 1))
	if disc == 0 {
		disc = 1
	}
	round := maxSeen>>epochDiscBits + 1
	if round > MaxEpochRound {
		return MaxEpochRound<<epochDiscBits | disc, false
	}
	return round<<epochDiscBits | disc, true
}

// EpochRound returns the election round of an epoch: how many elections
// its sub-domain had when it was taken.
func EpochRound(epoch uint64) uint64 { return epoch >> epochDiscBits }

// isManager reports whether m counts as a manager: it says so and, with a
// trust root, proved a certificate that says so. An unverified member is
// never elected, never counted toward quorum and never blocks a claim.
func isManager(m *Member) bool { return m.Role == role.Manager && !m.Observer && m.Trusted() }

// electAll computes the active manager and its epoch of every sub-domain
// with managers in members.
func electAll(members []*Member) (map[string]Member, map[string]uint64) {
	actives := map[string]Member{}
	epochs := map[string]uint64{}
	for i := range members {
		m := members[i]
		if !isManager(m) || m.Status != StatusAlive || m.State == Draining {
			continue
		}
		cur, ok := actives[m.SubDomain]
		if m.ManagerMode == ActiveActive {
			// Active/Active: any live manager writes; report the lowest
			// serving name (stable) unless a passive claim already stands.
			if m.State == Serving && (!ok || (cur.Claim == 0 && m.Name < cur.Name)) {
				actives[m.SubDomain] = *m
			}
			continue
		}
		if !validClaim(m.Claim) {
			continue
		}
		if !ok || cur.Claim < m.Claim || (cur.Claim == m.Claim && m.Name < cur.Name) {
			actives[m.SubDomain] = *m
			epochs[m.SubDomain] = m.Claim
		}
	}
	return actives, epochs
}

// quorumMet reports whether self sees a majority of quorum managers of its
// sub-domain alive (itself included). quorum 0 means no quorum rule.
func quorumMet(members []*Member, self *Member, quorum int) bool {
	if quorum <= 0 {
		return true
	}
	n := 0
	for i := range members {
		m := members[i]
		if isManager(m) && m.SubDomain == self.SubDomain && m.Status == StatusAlive {
			n++
		}
	}
	return n >= quorum/2+1
}

// decideClaim returns the claim epoch self should advertise, given the
// members it sees (self included, with its current claim), the highest
// epoch it has seen, and whether it may start a new claim now.
func decideClaim(members []*Member, self *Member, quorum int, maxSeen uint64, mayClaim bool) uint64 {
	if self.ManagerMode != ActivePassive || !isManager(self) || self.State == Draining {
		return 0
	}
	if !quorumMet(members, self, quorum) {
		return 0
	}
	actives, _ := electAll(members)
	cur, ok := actives[self.SubDomain]
	if ok {
		if cur.Name == self.Name {
			return self.Claim
		}
		return 0 // someone with a higher epoch claims: withdraw (or stay stand-by)
	}
	if !mayClaim {
		return 0
	}
	// No live claim: the lowest-named candidate claims.
	for i := range members {
		m := members[i]
		if isManager(m) && m.SubDomain == self.SubDomain && m.ManagerMode == ActivePassive &&
			m.Status == StatusAlive && m.State != Draining && m.Name < self.Name {
			return 0
		}
	}
	e, _ := nextEpoch(maxSeen, self.Name) // saturated: recompute reports it
	return e
}
