package lb

import (
	"math/bits"
	"time"
)

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
