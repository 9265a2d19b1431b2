package lb

import (
	"context"
	"math"
	"slices"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// entry is a member in a set.
type entry struct {
	name      string
	weight    float64
	slowFrom  int64 // slow start: clock when it began, 0 none
	slowUntil int64
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
	s       *state
	policy  Policy
	e       []entry
	order   []int32     // ActiveFirst and Nearest: indices in preference order
	sched   []int32     // RoundRobin: weighted schedule, nil when uniform
	ring    []ringPoint // ConsistentHash
	anySlow bool
	uniform bool
	next    atomic.Uint32
}

type keyCtx struct{}

// WithKey returns a context whose calls the ConsistentHash policy sends to
// the same member as every other call with the same key (a tenant, a user,
// a session), as long as that member is in service and not overloaded.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

func keyFrom(ctx context.Context) (string, bool) {
	if ctx == nil {
		return "", false
	}
	k, ok := ctx.Value(keyCtx{}).(string)
	return k, ok
}

const vnodes = 64 // ring points per unit of weight

// newSet builds the set of peers ps (sorted by name) for policy p.
// ranks and rtts order ActiveFirst and Nearest.
func (s *state) newSet(p Policy, ps []peer, st []*memberStats) *set {
	now := s.now()
	x := &set{s: s, policy: p, e: make([]entry, len(ps)), uniform: true}
	for i, pe := range ps {
		x.e[i] = entry{name: pe.name, weight: pe.weight, st: st[i]}
		if pe.weight != ps[0].weight {
			x.uniform = false
		}
		if w := s.o.slowStart; w > 0 && pe.since != 0 && now-pe.since < int64(w) && (p == RoundRobin || p == LeastLoaded) {
			x.e[i].slowFrom, x.e[i].slowUntil = pe.since, pe.since+int64(w)
			x.anySlow = true
		}
	}
	switch p {
	case RoundRobin:
		if !x.uniform {
			x.sched = schedule(ps)
		}
	case ConsistentHash:
		x.ring = ring(ps)
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
		x.next.Store(uint32(s.o.rand()))
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

// clock returns the time of the pick, reading the clock at most once.
func (x *set) clock(t *int64) int64 {
	if *t == 0 {
		*t = x.s.now()
	}
	return *t
}

// usable reports whether member i may take a call: not skipped, not ejected.
func (x *set) usable(i, skip int, t *int64) bool {
	if i == skip {
		return false
	}
	st := x.e[i].st
	u := st.ejected.Load()
	if u == 0 {
		return true
	}
	if u > x.clock(t) {
		return false
	}
	st.ejected.CompareAndSwap(u, 0) // back in service
	return true
}

// admit applies slow start: a member warming up takes a call with a
// probability growing from 10% to 100% over the window.
func (x *set) admit(i int, t *int64) bool {
	if !x.anySlow {
		return true
	}
	e := &x.e[i]
	if e.slowUntil == 0 {
		return true
	}
	now := x.clock(t)
	if now >= e.slowUntil {
		return true
	}
	f := max(0.1, float64(now-e.slowFrom)/float64(e.slowUntil-e.slowFrom))
	return float64(x.s.o.rand()>>11)/(1<<53) < f
}

// pick chooses a member for a call, never member skip (-1 for none). It
// returns -1 only when the set is empty or skip was its only member. A
// member in slow start or ejected is passed over, but if every member is
// ejected one is chosen anyway: calls are better tried than failed.
func (x *set) pick(key string, hasKey bool, skip int, t *int64) int {
	n := len(x.e)
	if n == 0 || (n == 1 && skip == 0) {
		return -1
	}
	switch x.policy {
	case RoundRobin:
		for range 2 * n {
			i := x.nextRR()
			if x.usable(i, skip, t) && x.admit(i, t) {
				return i
			}
		}
	case ConsistentHash:
		if hasKey {
			if i := x.bounded(x.ringStart(key), skip, true, t); i >= 0 {
				return i
			}
			break
		}
		if i := x.p2c(skip, t); i >= 0 {
			return i
		}
	case ActiveFirst:
		for _, i := range x.order {
			if x.usable(int(i), skip, t) {
				return int(i)
			}
		}
	case Nearest:
		if i := x.bounded(0, skip, false, t); i >= 0 {
			return i
		}
	default:
		if i := x.p2c(skip, t); i >= 0 {
			return i
		}
	}
	return x.any(skip, t)
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
func (x *set) any(skip int, t *int64) int {
	n := len(x.e)
	start := int(x.s.o.rand() % uint64(n))
	for j := range n {
		if i := (start + j) % n; x.usable(i, skip, t) {
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
func (x *set) p2c(skip int, t *int64) int {
	n := len(x.e)
	if n == 1 {
		if x.usable(0, skip, t) {
			return 0
		}
		return -1
	}
	for range 3 {
		r := x.s.o.rand()
		a := int(r % uint64(n))
		b := int((r >> 32) % uint64(n-1))
		if b >= a {
			b++
		}
		ua, ub := x.usable(a, skip, t) && x.admit(a, t), x.usable(b, skip, t) && x.admit(b, t)
		switch {
		case ua && ub:
			if x.score(b, t) < x.score(a, t) {
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

const (
	unknownLatency = 1000    // ns: a member not measured yet looks fast, so it gets measured
	staleLatency   = 5 * 1e9 // ns: a sample older than this is forgotten
)

// score is the p2c cost of member i. A latency sample older than
// staleLatency is forgotten, so that a member that was slow gets probed
// again; that is checked only when the pick read the clock anyway (t set).
func (x *set) score(i int, t *int64) float64 {
	e := &x.e[i]
	l := e.st.ewma.Load()
	if l == 0 || (*t != 0 && *t-e.st.lastObs.Load() > staleLatency) {
		l = unknownLatency
	}
	return float64(e.st.inflight.Load()+1) * float64(l) / e.weight
}

func (x *set) ringStart(key string) int {
	h := xxhash.Sum64String(key)
	r := x.ring
	lo, hi := 0, len(r)
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
// and returns the first usable member whose in-flight calls stay within
// loadFactor × the average share: consistent hashing with bounded loads.
func (x *set) bounded(start, skip int, hash bool, t *int64) int {
	n := len(x.e)
	limit := int64(math.Ceil(x.s.o.loadFactor * float64(x.s.total.Load()+1) / float64(n)))
	steps := n
	if hash {
		steps = len(x.ring)
	}
	first := -1
	for j := range steps {
		var i int
		if hash {
			i = int(x.ring[(start+j)%len(x.ring)].idx)
		} else {
			i = int(x.order[j])
		}
		if !x.usable(i, skip, t) {
			continue
		}
		if first < 0 {
			first = i
		}
		if x.e[i].st.inflight.Load() < limit {
			return i
		}
	}
	return first
}
