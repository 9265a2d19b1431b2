//go:build linux

package netlab

import (
	"fmt"
	"math"
	"slices"
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

// Recovery gathers the recovery times of many runs' faults, for the
// figures a soak or a RecoverySchedule prints (Add each run's Summary).
// The zero value is empty and ready.
type Recovery struct {
	// WritesBack is, for each kill -9 of the active manager, how long
	// after the kill a write was acknowledged again.
	WritesBack Samples
	// ByStandby counts the WritesBack samples where that happened before
	// the killed manager restarted, so a stand-by had taken over.
	ByStandby int
	// Restarted is, for the same kills, how long after the restart every
	// node saw one view again.
	Restarted Samples
	// Healed is, for each partition, how long after the heal every node
	// saw one view (the same members and one active manager) again.
	Healed Samples
	// Reconnected is the same after a one-way cut or an isolated host was
	// undone.
	Reconnected Samples
}

// Add takes in the faults of one run.
func (r *Recovery) Add(s Summary) {
	for _, f := range s.Faults {
		switch f.Kind {
		case FaultKill:
			if !f.WasActive {
				continue
			}
			r.WritesBack.Add(f.Recovered)
			if f.Recovered >= 0 && f.Recovered < f.End.Sub(f.Start) {
				r.ByStandby++
			}
			r.Restarted.Add(f.ViewAfter)
		case FaultPartition:
			r.Healed.Add(f.ViewAfter)
		case FaultCut, FaultIsolate:
			r.Reconnected.Add(f.ViewAfter)
		}
	}
}

// String is one line per measure that has samples.
func (r Recovery) String() string {
	var b strings.Builder
	if r.WritesBack.N() > 0 {
		fmt.Fprintf(&b, "writes back after kill -9 of the active manager: %s (%d of them before it restarted)\n", r.WritesBack, r.ByStandby)
		fmt.Fprintf(&b, "one view after the killed manager restarted: %s\n", r.Restarted)
	}
	if r.Healed.N() > 0 {
		fmt.Fprintf(&b, "one view after a partition healed: %s\n", r.Healed)
	}
	if r.Reconnected.N() > 0 {
		fmt.Fprintf(&b, "one view after a cut or isolation ended: %s\n", r.Reconnected)
	}
	if b.Len() == 0 {
		return "no recovery samples (no kill of the active manager, partition, cut or isolation)\n"
	}
	return b.String()
}

// Samples are recovery times of one measure; a fault that did not recover
// within the lab's bound (a time of -1) counts as never and ranks above
// every time, so it shows in the high percentiles instead of vanishing.
type Samples struct {
	times []time.Duration // sorted
	never int
}

// Add records one time; a negative one means never.
func (s *Samples) Add(d time.Duration) {
	if d < 0 {
		s.never++
		return
	}
	i, _ := slices.BinarySearch(s.times, d)
	s.times = slices.Insert(s.times, i, d)
}

// N is how many samples there are, never included.
func (s Samples) N() int { return len(s.times) + s.never }

// Never is how many faults did not recover within the lab's bound.
func (s Samples) Never() int { return s.never }

// Quantile is the q-quantile (0 < q <= 1) by nearest rank: the smallest
// sample with at least a fraction q of them at or below it; -1 when that
// is a never, or there are no samples.
func (s Samples) Quantile(q float64) time.Duration {
	n := s.N()
	if n == 0 {
		return -1
	}
	rank := min(n, max(1, int(math.Ceil(q*float64(n)))))
	if rank > len(s.times) {
		return -1
	}
	return s.times[rank-1]
}

// String is "n=N p50=... p99=... max=...", with the count of nevers.
func (s Samples) String() string {
	if s.N() == 0 {
		return "no samples"
	}
	str := fmt.Sprintf("n=%d p50=%s p99=%s max=%s", s.N(), fmtDur(s.Quantile(0.5)), fmtDur(s.Quantile(0.99)), fmtDur(s.Quantile(1)))
	if s.never > 0 {
		str += fmt.Sprintf(" (%d never within the bound)", s.never)
	}
	return str
}
