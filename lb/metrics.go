package lb

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/metric"
)

// Metric names.
const (
	MetricPicks     = "carbon.lb.picks"     // calls sent to a member
	MetricErrors    = "carbon.lb.errors"    // calls to a member that failed
	MetricEjections = "carbon.lb.ejections" // times a member was ejected
	MetricInFlight  = "carbon.lb.in_flight" // calls in flight to a member
)

// registerMetrics exports the counters through an observable callback, so
// that picks never touch the metrics SDK.
func (s *state) registerMetrics() (unregister func()) {
	m := s.o.mp.Meter("github.com/carbonkit/carbon/lb")
	picks, err1 := m.Int64ObservableCounter(MetricPicks, metric.WithDescription("Calls sent to a member."))
	errs, err2 := m.Int64ObservableCounter(MetricErrors, metric.WithDescription("Calls to a member that failed."))
	ej, err3 := m.Int64ObservableCounter(MetricEjections, metric.WithDescription("Times a member was ejected as an outlier."))
	infl, err4 := m.Int64ObservableUpDownCounter(MetricInFlight, metric.WithDescription("Calls in flight to a member."))
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
