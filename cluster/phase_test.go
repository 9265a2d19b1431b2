package cluster

import "testing"

// TestJoinPhaseTransitions walks every phase through every event and
// checks that only the transitions of the diagram move it.
func TestJoinPhaseTransitions(t *testing.T) {
	want := map[joinPhase]map[joinEvent]joinPhase{
		phaseJoining:          {evContact: phaseJoiningContacted, evAttemptOver: phaseAlone},
		phaseJoiningContacted: {evCaughtUp: phaseJoiningCaughtUp, evAttemptOver: phaseContacted},
		phaseJoiningCaughtUp:  {evAttemptOver: phaseCaughtUp},
		phaseAlone:            {evContact: phaseContacted},
		phaseContacted:        {evCaughtUp: phaseCaughtUp},
	}
	for p := phaseJoining; p <= phaseCaughtUp; p++ {
		for _, ev := range []joinEvent{evContact, evCaughtUp, evAttemptOver} {
			var s phaseState
			s.v.Store(uint32(p))
			moved := s.advance(ev)
			to, ok := want[p][ev]
			switch {
			case ok && (!moved || s.load() != to):
				t.Errorf("%v + event %d: moved %v to %v, want %v", p, ev, moved, s.load(), to)
			case !ok && (moved || s.load() != p):
				t.Errorf("%v + event %d: moved %v to %v, want refused", p, ev, moved, s.load())
			}
		}
	}
}

// TestJoinPhaseMayClaim: only phaseCaughtUp is past its first attempt,
// in contact and caught up at once.
func TestJoinPhaseMayClaim(t *testing.T) {
	for p := phaseJoining; p <= phaseCaughtUp; p++ {
		got := p.attemptOver() && p.contacted() && p.caughtUp()
		if got != (p == phaseCaughtUp) {
			t.Errorf("%v: attemptOver %v contacted %v caughtUp %v", p, p.attemptOver(), p.contacted(), p.caughtUp())
		}
	}
}
