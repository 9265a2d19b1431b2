package lb

import (
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/balancer"
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
