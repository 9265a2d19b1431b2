package lb

import (
	"strconv"

	"github.com/carbonkit/carbon/cluster"
)

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
