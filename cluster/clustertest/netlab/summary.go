package netlab

import (
	"fmt"
	"strings"
	"time"
)

// Summary is what a run did, in numbers.
type Summary struct {
	Pattern                  int
	Seed                     int64
	Took                     time.Duration
	Faults                   []FaultRecord
	Writes, Acked, Failed    int // write attempts through the managers
	Unknown                  int // writes with no answer (timeouts)
	Reads, WorkerWriteProbes int
	Violations               []Violation
	Overlaps                 []Overlap
	// NotCarried are what the strict promises (every acknowledged write on
	// every node) find beyond the example catalog's own (no catch-up after
	// a restart or partition): its known gap, reported, not a violation.
	NotCarried []Violation
}

func summarize(h History, r Report, took time.Duration) Summary {
	s := Summary{Pattern: h.Pattern, Seed: h.Seed, Took: took, Faults: h.Faults, Violations: r.Violations, Overlaps: r.Overlaps}
	for _, op := range h.Ops {
		switch op.Kind {
		case OpWrite:
			s.Writes++
			switch op.Result {
			case OK:
				s.Acked++
			case Fail:
				s.Failed++
			default:
				s.Unknown++
			}
		case OpRead:
			s.Reads++
		case OpWorkerWrite:
			s.WorkerWriteProbes++
		}
	}
	return s
}

// String is the summary as a few lines of text, the seed first so a
// failing run can be replayed.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "netlab pattern %d seed %d: %d faults, %d write attempts (%d acked, %d refused, %d no answer), %d reads, %d worker-write probes, %d violations, %d overlap windows, %v\n",
		s.Pattern, s.Seed, len(s.Faults), s.Writes, s.Acked, s.Failed, s.Unknown, s.Reads, s.WorkerWriteProbes, len(s.Violations), len(s.Overlaps), s.Took.Round(time.Millisecond))
	for _, f := range s.Faults {
		act := ""
		if f.WasActive {
			act = " (the active manager)"
		}
		fmt.Fprintf(&b, "  fault %-40s%s: writes back %v after it began, one view %v after it ended\n", f.Fault, act, fmtDur(f.Recovered), fmtDur(f.ViewAfter))
	}
	for _, o := range s.Overlaps {
		fmt.Fprintf(&b, "  overlap: %s (epoch %d) acknowledged writes for %v after %s (epoch %d) had\n", o.Old, o.OldEpoch, o.To.Sub(o.From).Round(time.Millisecond), o.New, o.NewEpoch)
	}
	for _, v := range s.NotCarried {
		fmt.Fprintf(&b, "  not carried over (no catch-up in the example catalog) %s\n", v)
	}
	for _, v := range s.Violations {
		fmt.Fprintf(&b, "  VIOLATION %s\n", v)
	}
	return b.String()
}
