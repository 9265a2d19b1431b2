package lb

import (
	"context"
	"math/bits"
	rand "math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/balancer"

	"github.com/carbonkit/carbon/cluster"
)

// Time and randomness seams: a balancer reads them through its options so
// that tests can replace them per balancer, never globally.
var epoch = time.Now()

func monotonic() int64 { return int64(time.Since(epoch)) + 1 } // never 0

// rand returns a random number for a pick: the test seam if one is set,
// else splitmix64 over the state's atomic counter (seeded at random). One
// atomic add and a direct call, not a closure: less than math/rand/v2's
// generator costs here, and picks need no better randomness.
func (s *state) rand() uint64 {
	if s.o.rand != nil {
		return s.o.rand()
	}
	return splitmix(s.rng.Add(golden))
}

// golden is splitmix64's increment.
const golden = 0x9e3779b97f4a7c15

// splitmix is the output function of splitmix64.
func splitmix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// afterFunc runs f once d has passed, in its own goroutine (no goroutine
// exists until then); stop cancels it.
func afterFunc(d time.Duration, f func()) (stop func() bool) { return time.AfterFunc(d, f).Stop }

// Metric names.
const (
	MetricPicks     = "carbon.lb.picks"     // calls sent to a member
	MetricErrors    = "carbon.lb.errors"    // calls to a member that failed
	MetricEjections = "carbon.lb.ejections" // times a member was ejected
	MetricInFlight  = "carbon.lb.in_flight" // calls in flight to a member
)

// memberStats are the counters of one member, shared by every picker of a
// balancer and kept across picker rebuilds. The counters are atomics: they
// are updated on every pick and every Done. A pick costs two atomic adds
// (picks, then done at its end; in-flight is their difference) and no clock
// read, but on the calls that measure latency.
type memberStats struct {
	name      string
	picks     atomic.Int64 // calls begun
	done      atomic.Int64 // calls ended
	ewma      atomic.Int64 // latency, ns; 0 unknown
	lastObs   atomic.Int64 // clock of the last latency sample
	sampleAt  atomic.Int64 // clock at the pick of the call measuring latency; 0 none in flight
	errors    atomic.Int64
	consec    atomic.Int32
	ejected   atomic.Int64 // clock at which the ejection ends; 0 in service
	ejectN    atomic.Int64 // ejections so far
	backoffK  int          // guarded by state.ejectMu
	lastEnd   int64        // guarded by state.ejectMu
	ejectStop func() bool  // guarded by state.ejectMu: cancels the return timer
	attrs     metric.MeasurementOption
	doneFn    func(balancer.DoneInfo) // prebound Done of calls that measure nothing
	sampleFn  func(balancer.DoneInfo) // prebound Done of the call measuring latency
}

// trySample makes the call just picked for st the one measuring st's
// latency, if none is in flight (or the one in flight started more than
// staleLatency ago by the coarse clock: its Done may never come), and
// returns whether it is. Its Done must then be st.sampleFn. One
// measurement in flight per member is plenty for the EWMA, and it needs no
// allocation. A call that lost the slot that way and ends later takes the
// newer call's start: a short, plausible sample, and rare.
func (s *state) trySample(st *memberStats) bool {
	old := st.sampleAt.Load()
	if old != 0 && s.lastNow.Load()-old <= staleLatency {
		return false
	}
	return st.sampleAt.CompareAndSwap(old, s.now())
}

// forgotten reports whether the member's last latency sample is older than
// staleLatency at clock now: picks then count it as unknown (entry.cost),
// and the next sample starts its average afresh (finish).
func (st *memberStats) forgotten(now int64) bool {
	return now-st.lastObs.Load() > staleLatency
}

// inFlight returns the calls begun and not ended. done is read first, so a
// call ending meanwhile can only make the result too high, never negative.
func (st *memberStats) inFlight() int64 {
	d := st.done.Load()
	return st.picks.Load() - d
}

// state is what one Dial (or one Transport) shares between its resolver,
// its balancer, its pickers and its metrics: options, member stats and the
// set of members in service. It travels to the balancer as a resolver
// attribute.
type state struct {
	o   *options
	sub string
	// named: each address carries its member's name as ServerName, which
	// the trust credentials check the server's certificate against.
	named bool

	mu      sync.Mutex
	stats   map[string]*memberStats
	since   map[string]int64 // when each routable member was first seen
	lastNow atomic.Int64     // the newest clock reading (see now): a coarse clock for picks
	rng     atomic.Uint64    // state of rand
	primed  bool             // the first view was seen
	members atomic.Int32     // members in the last update

	total   atomic.Int64 // in-flight calls to all members, when bounded
	bounded bool         // the policy bounds load (hash, nearest)

	ejectMu sync.Mutex

	firstMu sync.Mutex
	first   string        // member the ActiveFirst picker tries first
	firstCh chan struct{} // closed when first changes

	transport string
}

func newState(o *options, sub, transport string) *state {
	s := &state{
		o: o, sub: sub, transport: transport,
		bounded: o.policy == ConsistentHash || o.policy == Nearest,
		stats:   map[string]*memberStats{},
		since:   map[string]int64{},
		firstCh: make(chan struct{}),
	}
	s.rng.Store(rand.Uint64())
	return s
}

// Equal lets grpc compare resolver attributes holding a *state.
func (s *state) Equal(o any) bool { x, ok := o.(*state); return ok && x == s }

// now reads the clock, and keeps the reading as the coarse clock picks may
// read for free (lastNow). The clock is read on builds, ejections and the
// calls that measure latency, never on the other picks: on a slow
// clocksource one reading costs as much as a whole pick.
func (s *state) now() int64 {
	t := s.o.clock()
	s.lastNow.Store(t)
	return t
}

// statsFor returns the stats of a member, creating them.
func (s *state) statsFor(name string) *memberStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats[name]
	if st == nil {
		st = &memberStats{name: name, attrs: metric.WithAttributeSet(attribute.NewSet(
			attribute.String("member", name),
			attribute.String("sub_domain", s.sub),
			attribute.String("transport", s.transport),
		))}
		st.doneFn = func(di balancer.DoneInfo) {
			if di.Err == nil {
				s.finishOK(st)
				return
			}
			s.finish(st, 0, s.grpcFailure(di.Err), true)
		}
		st.sampleFn = func(di balancer.DoneInfo) {
			s.finish(st, st.sampleAt.Swap(0), s.grpcFailure(di.Err), di.Err != nil)
		}
		s.stats[name] = st
	}
	return st
}

// peer is a member as the policies see it.
type peer struct {
	name   string
	addr   string
	weight float64
	rank   int   // ActiveFirst order: 0 the active manager
	since  int64 // clock when it became routable; 0 before the balancer started
}

// peers returns the routable members of the sub-domain with the endpoint,
// sorted by name, and records when new ones became routable.
func (s *state) peers(v *cluster.View) []peer {
	var act string
	if a, ok := v.Active(s.sub); ok {
		act = a.Name
	}
	var ps []peer
	for _, m := range v.Members() {
		if m.SubDomain != s.sub || !m.Routable() {
			continue
		}
		addr, ok := m.Endpoint(s.o.endpoint)
		if !ok || addr == "" {
			continue
		}
		ps = append(ps, peer{name: m.Name, addr: addr, weight: s.weight(m)})
	}
	// Ranks: the active manager first, then the others by name.
	r := 1
	for i := range ps {
		if ps[i].name == act {
			ps[i].rank = 0
		} else {
			ps[i].rank = r
			r++
		}
	}
	now := s.now()
	s.mu.Lock()
	seen := make(map[string]bool, len(ps))
	for i := range ps {
		seen[ps[i].name] = true
		t, ok := s.since[ps[i].name]
		if !ok {
			t = 0
			if s.primed {
				t = now
			}
			s.since[ps[i].name] = t
		}
		ps[i].since = t
	}
	for n := range s.since {
		if !seen[n] {
			delete(s.since, n)
		}
	}
	var gone []*memberStats
	for n, st := range s.stats {
		if !seen[n] {
			delete(s.stats, n) // calls in flight keep their pointer
			gone = append(gone, st)
		}
	}
	s.primed = true
	s.mu.Unlock()
	if len(gone) > 0 {
		s.ejectMu.Lock()
		for _, st := range gone {
			st.stopEjectTimer()
		}
		s.ejectMu.Unlock()
	}
	s.members.Store(int32(len(ps)))
	return ps
}

func (s *state) weight(m cluster.Member) float64 {
	if s.o.weightProp == "" {
		return 1
	}
	v, ok := m.Properties[s.o.weightProp]
	if !ok {
		return 1
	}
	w, err := strconv.ParseFloat(v, 64)
	if err != nil || !(w > 0) {
		s.o.logger.Warn("lb: bad member weight, using 1", "member", m.Name, "property", s.o.weightProp, "value", v)
		return 1
	}
	return min(w, 100)
}

// begin counts a call picked for st and returns st's count of picks.
func (s *state) begin(st *memberStats) int64 {
	if s.bounded {
		s.total.Add(1)
	}
	return st.picks.Add(1)
}

// finish ends a call begun on st: start is the clock at the pick (0 if
// latency is not measured), failure whether the call counts against the
// member for ejection, isErr whether it failed at all.
func (s *state) finish(st *memberStats, start int64, failure, isErr bool) {
	st.done.Add(1)
	if s.bounded {
		s.total.Add(-1)
	}
	if start != 0 {
		now := s.now()
		sample := now - start
		old := st.ewma.Load()
		if failure && sample < 4*old {
			sample = 4 * old // a member that fails fast must not look fast
		}
		if old == 0 || st.forgotten(now) {
			// Unknown, or forgotten: start afresh.
			st.ewma.Store(sample)
		} else {
			st.ewma.Store(old + (sample-old)/8)
		}
		st.lastObs.Store(now)
	}
	if isErr {
		st.errors.Add(1)
	}
	if !failure {
		if st.consec.Load() != 0 {
			st.consec.Store(0)
		}
		return
	}
	if c := st.consec.Add(1); s.o.ejection.Consecutive > 0 && int(c) >= s.o.ejection.Consecutive {
		s.eject(st)
	}
}

// finishOK is finish(st, 0, false, false), small enough to be inlined in
// the Done of most calls.
func (s *state) finishOK(st *memberStats) {
	st.done.Add(1)
	if s.bounded {
		s.total.Add(-1)
	}
	if st.consec.Load() != 0 {
		st.consec.Store(0)
	}
}

// eject leaves st out of picks for a while, unless too many members are
// ejected already.
func (s *state) eject(st *memberStats) {
	s.ejectMu.Lock()
	defer s.ejectMu.Unlock()
	now := s.now()
	if u := st.ejected.Load(); u != 0 && u > now {
		return // already out
	}
	e := s.o.ejection
	limit := int(s.members.Load()) * e.MaxEjectedPercent / 100
	out := 0
	s.mu.Lock()
	for _, o := range s.stats {
		if u := o.ejected.Load(); u != 0 && u > now {
			out++
		}
	}
	s.mu.Unlock()
	if out+1 > limit {
		return
	}
	if st.lastEnd != 0 && now-st.lastEnd > int64(e.MaxTime) {
		st.backoffK = 0
	}
	d := int64(e.BaseTime)
	if k := st.backoffK; k > 0 {
		if k >= 63-bits.Len64(uint64(d)) {
			d = int64(e.MaxTime)
		} else {
			d <<= k
		}
	}
	d = min(d, int64(e.MaxTime))
	st.backoffK++
	until := now + d
	st.lastEnd = until
	st.consec.Store(0)
	st.ejected.Store(until)
	st.ejectN.Add(1)
	// A timer brings the member back, so that picks need no clock to see
	// the ejection end.
	st.stopEjectTimer()
	st.ejectStop = s.o.afterFunc(time.Duration(d), func() { st.ejected.CompareAndSwap(until, 0) })
	s.o.logger.Info("lb: member ejected", "member", st.name, "sub_domain", s.sub, "for", time.Duration(d))
}

// stopEjectTimer cancels the timer of st's ejection, if any. The caller
// holds s.ejectMu.
func (st *memberStats) stopEjectTimer() {
	if st.ejectStop != nil {
		st.ejectStop()
		st.ejectStop = nil
	}
}

// close cancels the timers of the ejections in progress and brings the
// ejected members back. The state still works afterwards (a Transport may
// be used after its Close): a later ejection starts a new timer.
func (s *state) close() {
	s.ejectMu.Lock()
	defer s.ejectMu.Unlock()
	s.mu.Lock()
	all := make([]*memberStats, 0, len(s.stats))
	for _, st := range s.stats {
		all = append(all, st)
	}
	s.mu.Unlock()
	for _, st := range all {
		if st.ejectStop != nil {
			st.stopEjectTimer()
			st.ejected.Store(0)
		}
	}
}

// setFirst records the member the ActiveFirst picker now tries first.
func (s *state) setFirst(name string) {
	s.firstMu.Lock()
	if s.first != name {
		s.first = name
		close(s.firstCh)
		s.firstCh = make(chan struct{})
	}
	s.firstMu.Unlock()
}

// waitFirstNot waits until the ActiveFirst picker tries another member than
// name first, or ctx ends.
func (s *state) waitFirstNot(ctx context.Context, name string) bool {
	for {
		s.firstMu.Lock()
		f, ch := s.first, s.firstCh
		s.firstMu.Unlock()
		if f != name && f != "" {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// registerMetrics exports the counters through an observable callback, so
// that picks never touch the metrics SDK.
func (s *state) registerMetrics() (unregister func()) {
	m := s.o.mp.Meter("github.com/carbonkit/carbon/lb")
	picks, err1 := m.Int64ObservableCounter(MetricPicks, metric.WithDescription("Calls sent to a member."), metric.WithUnit("{call}"))
	errs, err2 := m.Int64ObservableCounter(MetricErrors, metric.WithDescription("Calls to a member that failed."), metric.WithUnit("{call}"))
	ej, err3 := m.Int64ObservableCounter(MetricEjections, metric.WithDescription("Times a member was ejected as an outlier."), metric.WithUnit("{ejection}"))
	infl, err4 := m.Int64ObservableUpDownCounter(MetricInFlight, metric.WithDescription("Calls in flight to a member."), metric.WithUnit("{call}"))
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			s.o.logger.Warn("lb: metrics disabled", "err", err)
			return func() {}
		}
	}
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		s.mu.Lock()
		all := make([]*memberStats, 0, len(s.stats))
		for _, st := range s.stats {
			all = append(all, st)
		}
		s.mu.Unlock()
		slices.SortFunc(all, func(a, b *memberStats) int { return cmpString(a.name, b.name) })
		for _, st := range all {
			ob.ObserveInt64(picks, st.picks.Load(), st.attrs)
			ob.ObserveInt64(errs, st.errors.Load(), st.attrs)
			ob.ObserveInt64(ej, st.ejectN.Load(), st.attrs)
			ob.ObserveInt64(infl, st.inFlight(), st.attrs)
		}
		return nil
	}, picks, errs, ej, infl)
	if err != nil {
		s.o.logger.Warn("lb: metrics disabled", "err", err)
		return func() {}
	}
	return func() { _ = reg.Unregister() }
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
