package lb

import (
	"context"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// entry is a member in a set.
type entry struct {
	name      string
	weight    float64
	invWeight float64 // 1/weight: p2c multiplies rather than divides
	slowFrom  int64   // slow start: clock when it began, 0 none
	slowUntil int64
	admitP    atomic.Uint64 // slow start: admit a call if rand>>11 < admitP (fullAdmit: always)
	st        *memberStats
}

type ringPoint struct {
	hash uint64
	idx  int32
}

// set is an immutable list of members in service and the precomputed data of
// one policy over it. Its pick method is the policy: gRPC pickers and the
// HTTP transport share it.
type set struct {
	s      *state
	policy Policy
	e      []entry
	order  []int32     // ActiveFirst and Nearest: indices in preference order
	sched  []int32     // RoundRobin: weighted schedule, nil when uniform
	ring   []ringPoint // ConsistentHash
	// ringIdx[b] is the first ring point whose hash's top ringBits bits are
	// b or more: a lookup searches only its bucket.
	ringIdx  []int32
	ringBits uint
	anySlow  bool
	uniform  bool
	loadPer  float64 // bounded loads: loadFactor ÷ members
	next     atomic.Uint32
	// slowNext is the clock at which the slow-start shares are due for a
	// refresh (refreshSlow); 0 when no member is slowly starting.
	slowNext atomic.Int64
}

// ctxKey is the type of this package's context keys. A key is a pointer, so
// that looking it up compares pointers only.
type ctxKey struct{ name string }

var routeKeyCtx = &ctxKey{"lb.key"}

// routeKey is a ConsistentHash key and its hash, computed once by WithKey
// rather than on every pick of every call (and retry) made with the context.
type routeKey struct {
	key  string
	hash uint64
}

// WithKey returns a context whose calls the ConsistentHash policy sends to
// the same member as every other call with the same key (a tenant, a user,
// a session), as long as that member is in service and not overloaded. The
// key is hashed here, once, not on each pick.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, routeKeyCtx, routeKey{key: key, hash: keyHash(key)})
}

// keyHash places a key on the ring.
func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

// keyFrom returns the hash of the key set by WithKey on ctx, if any.
func keyFrom(ctx context.Context) (uint64, bool) {
	if ctx == nil {
		return 0, false
	}
	k, ok := ctx.Value(routeKeyCtx).(routeKey)
	return k.hash, ok
}

const vnodes = 64 // ring points per unit of weight

// newSet builds the set of peers ps (sorted by name) for policy p.
// ranks and rtts order ActiveFirst and Nearest.
func (s *state) newSet(p Policy, ps []peer, st []*memberStats) *set {
	now := s.now()
	x := &set{s: s, policy: p, e: make([]entry, len(ps)), uniform: true}
	for i, pe := range ps {
		e := &x.e[i]
		e.name, e.weight, e.invWeight, e.st = pe.name, pe.weight, 1/pe.weight, st[i]
		e.admitP.Store(fullAdmit)
		if pe.weight != ps[0].weight {
			x.uniform = false
		}
		if w := s.o.slowStart; w > 0 && pe.since != 0 && now-pe.since < int64(w) && (p == RoundRobin || p == LeastLoaded) {
			e.slowFrom, e.slowUntil = pe.since, pe.since+int64(w)
			x.anySlow = true
		}
	}
	if x.anySlow {
		x.slowNext.Store(x.refreshSlow(now))
	}
	if len(ps) > 0 {
		x.loadPer = s.o.loadFactor / float64(len(ps))
	}
	switch p {
	case RoundRobin:
		if !x.uniform {
			x.sched = schedule(ps)
		}
	case ConsistentHash:
		x.ring = ring(ps)
		x.ringBits = uint(min(bits.Len(uint(len(x.ring))), 16))
		x.ringIdx = make([]int32, 1<<x.ringBits+1)
		j := 0
		for b := range x.ringIdx {
			for j < len(x.ring) && x.ring[j].hash>>(64-x.ringBits) < uint64(b) {
				j++
			}
			x.ringIdx[b] = int32(j)
		}
	case ActiveFirst:
		x.order = make([]int32, len(ps))
		for i := range x.order {
			x.order[i] = int32(i)
		}
		slices.SortStableFunc(x.order, func(a, b int32) int { return ps[a].rank - ps[b].rank })
	case Nearest:
		rtt := make([]float64, len(ps))
		for i := range ps {
			rtt[i] = math.Inf(1)
			if s.o.rtt != nil {
				if d, ok := s.o.rtt(ps[i].name); ok {
					rtt[i] = float64(d)
				}
			}
			x.order = append(x.order, int32(i))
		}
		slices.SortStableFunc(x.order, func(a, b int32) int {
			switch {
			case rtt[a] < rtt[b]:
				return -1
			case rtt[a] > rtt[b]:
				return 1
			}
			return 0
		})
	}
	if len(ps) > 0 {
		x.next.Store(uint32(s.rand()))
	}
	return x
}

// schedule spreads each member over a cycle in proportion to its weight,
// interleaved as nginx's smooth weighted round robin does.
func schedule(ps []peer) []int32 {
	w := make([]int, len(ps))
	total := 0
	for i, p := range ps {
		w[i] = max(1, int(math.Round(p.weight*10)))
		total += w[i]
	}
	cur := make([]int, len(ps))
	out := make([]int32, 0, total)
	for range total {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, int32(best))
	}
	return out
}

func ring(ps []peer) []ringPoint {
	var r []ringPoint
	buf := make([]byte, 0, 64)
	for i, p := range ps {
		n := max(1, int(math.Round(p.weight*vnodes)))
		for j := range n {
			buf = append(buf[:0], p.name...)
			buf = append(buf, '#')
			buf = appendUint(buf, uint64(j))
			r = append(r, ringPoint{hash: xxhash.Sum64(buf), idx: int32(i)})
		}
	}
	slices.SortFunc(r, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.idx - b.idx)
	})
	return r
}

func appendUint(b []byte, v uint64) []byte {
	var t [20]byte
	i := len(t)
	for {
		i--
		t[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, t[i:]...)
}

// usable reports whether member i may take a call: not skipped, not
// ejected. An ejection is ended by its timer (state.eject), so no clock is
// read here.
func (x *set) usable(i, skip int) bool {
	return i != skip && x.e[i].st.ejected.Load() == 0
}

// fullAdmit is admitP for a member that takes every call offered.
const fullAdmit = 1 << 53

// slowSteps is how many times a slow start's share is raised over its
// window (at most every minSlowStep).
const (
	slowSteps   = 20
	minSlowStep = int64(10 * time.Millisecond)
)

// admit applies slow start: a member warming up takes a call with a
// probability growing from 10% to 100% over the window. The probability is
// computed by refreshSlow, not on the pick.
func (x *set) admit(i int) bool {
	return !x.anySlow || x.admitSlow(i)
}

func (x *set) admitSlow(i int) bool {
	p := x.e[i].admitP.Load()
	return p >= fullAdmit || x.s.rand()>>11 < p
}

// refreshSlow sets the slow-start share of each member for clock now and
// returns when it is due again, 0 once every slow start is over. The
// gRPC balancer calls it from a timer, the HTTP transport on the first
// request after it is due.
func (x *set) refreshSlow(now int64) (next int64) {
	for i := range x.e {
		e := &x.e[i]
		if e.slowUntil == 0 {
			continue
		}
		if now >= e.slowUntil {
			e.admitP.Store(fullAdmit)
			continue
		}
		w := e.slowUntil - e.slowFrom
		f := max(0.1, float64(now-e.slowFrom)/float64(w))
		e.admitP.Store(uint64(f * fullAdmit))
		n := min(now+max(w/slowSteps, minSlowStep), e.slowUntil)
		if next == 0 || n < next {
			next = n
		}
	}
	return next
}

// pick chooses a member for a call, never member skip (-1 for none). It
// returns -1 only when the set is empty or skip was its only member. A
// member in slow start or ejected is passed over, but if every member is
// ejected one is chosen anyway: calls are better tried than failed.
func (x *set) pick(key uint64, hasKey bool, skip int) int {
	n := len(x.e)
	if n == 0 || (n == 1 && skip == 0) {
		return -1
	}
	switch x.policy {
	case RoundRobin:
		for range 2 * n {
			i := x.nextRR()
			if x.usable(i, skip) && x.admit(i) {
				return i
			}
		}
	case ConsistentHash:
		if hasKey {
			if i := x.bounded(x.ringStart(key), skip, true); i >= 0 {
				return i
			}
			break
		}
		if i := x.p2c(skip); i >= 0 {
			return i
		}
	case ActiveFirst:
		for _, i := range x.order {
			if x.usable(int(i), skip) {
				return int(i)
			}
		}
	case Nearest:
		if i := x.bounded(0, skip, false); i >= 0 {
			return i
		}
	default:
		if i := x.p2c(skip); i >= 0 {
			return i
		}
	}
	return x.any(skip)
}

func (x *set) nextRR() int {
	c := x.next.Add(1)
	if x.sched != nil {
		return int(x.sched[c%uint32(len(x.sched))])
	}
	return int(c % uint32(len(x.e)))
}

// any returns the first usable member from a random start, or any member
// but skip if none is usable.
func (x *set) any(skip int) int {
	n := len(x.e)
	start := int(x.s.rand() % uint64(n))
	for j := range n {
		if i := (start + j) % n; x.usable(i, skip) {
			return i
		}
	}
	for j := range n {
		if i := (start + j) % n; i != skip {
			return i
		}
	}
	return -1
}

// p2c is power of two choices over (in-flight+1) × latency ÷ weight.
func (x *set) p2c(skip int) int {
	n := len(x.e)
	if n == 1 {
		if x.usable(0, skip) {
			return 0
		}
		return -1
	}
	now := x.s.lastNow.Load()
	if skip < 0 && !x.anySlow && x.uniform {
		// The usual case, with fewer branches: no member to skip, none
		// slowly starting, equal weights.
		a, b := x.pair(n)
		ea, eb := &x.e[a], &x.e[b]
		if ea.st.ejected.Load()|eb.st.ejected.Load() == 0 {
			if eb.cost(now) < ea.cost(now) {
				return b
			}
			return a
		}
	}
	for range 3 {
		a, b := x.pair(n)
		ua, ub := x.usable(a, skip) && x.admit(a), x.usable(b, skip) && x.admit(b)
		switch {
		case ua && ub:
			if x.e[b].score(now) < x.e[a].score(now) {
				return b
			}
			return a
		case ua:
			return a
		case ub:
			return b
		}
	}
	return -1
}

// pair returns two different random members of n (n ≥ 2), from the two
// halves of one random number by multiply-shift: a 64-bit division costs
// more than the rest of the choice.
func (x *set) pair(n int) (a, b int) {
	r := x.s.rand()
	a = int((r & math.MaxUint32) * uint64(n) >> 32)
	b = int((r >> 32) * uint64(n-1) >> 32)
	if b >= a {
		b++
	}
	return a, b
}

const (
	unknownLatency = 1000    // ns: a member not measured yet looks fast, so it gets measured
	staleLatency   = 5 * 1e9 // ns: a sample older than this is forgotten
)

// score is the p2c cost of the entry at clock now. A latency sample older
// than staleLatency is forgotten, so that a member that was slow gets probed
// again (and the probe's sample starts its average afresh, see finish); its
// age is told by the newest clock reading of the state (lastNow, moved on by
// every latency sample), not by reading the clock. Small enough to be
// inlined.
func (e *entry) score(now int64) float64 {
	return float64(e.cost(now)) * e.invWeight
}

// cost is score before the weight: (in-flight+1) × latency, in integers.
// Equal weights (the usual case) compare costs alone.
func (e *entry) cost(now int64) int64 {
	st := e.st
	l := st.ewma.Load()
	if l == 0 || st.forgotten(now) {
		l = unknownLatency
	}
	return (st.inFlight() + 1) * l
}

// ringStart returns the first ring point at or after the key hash h.
func (x *set) ringStart(h uint64) int {
	r := x.ring
	if len(r) == 0 {
		return 0
	}
	b := h >> (64 - x.ringBits)
	lo, hi := int(x.ringIdx[b]), int(x.ringIdx[b+1])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].hash < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r) {
		lo = 0
	}
	return lo
}

// bounded walks the ring (hash) or the preference order (!hash) from start
// and returns the first usable member whose in-flight calls stay below
// loadFactor × the average share (total+1)/n: consistent hashing with
// bounded loads. (For a whole number of calls, below y and below ⌈y⌉ are
// the same.)
func (x *set) bounded(start, skip int, hash bool) int {
	n := len(x.e)
	limit := x.loadPer * float64(x.s.total.Load()+1)
	steps := n
	if hash {
		steps = len(x.ring)
	}
	first := -1
	k := start // ring position, wrapped without a division
	for j := range steps {
		var i int
		if hash {
			if k == len(x.ring) {
				k = 0
			}
			i = int(x.ring[k].idx)
			k++
		} else {
			i = int(x.order[j])
		}
		if !x.usable(i, skip) {
			continue
		}
		if first < 0 {
			first = i
		}
		if float64(x.e[i].st.inFlight()) < limit {
			return i
		}
	}
	return first
}
