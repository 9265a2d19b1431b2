//go:build linux

package netlab

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// ActiveTarget as a Fault's Target means the active manager at the time the
// fault starts.
const ActiveTarget = "@active"

// Fault is one fault to inject.
type Fault struct {
	Kind     string
	Target   string     // kill, pause, isolate: a node or ActiveTarget
	From, To string     // cut: packets From -> To are dropped
	Groups   [][]string // partition
	Duration time.Duration
}

func (f Fault) String() string {
	switch f.Kind {
	case FaultCut:
		return fmt.Sprintf("cut %s->%s for %v", f.From, f.To, f.Duration)
	case FaultPartition:
		var gs []string
		for _, g := range f.Groups {
			gs = append(gs, "{"+strings.Join(g, " ")+"}")
		}
		return fmt.Sprintf("partition %s for %v", strings.Join(gs, " | "), f.Duration)
	}
	return fmt.Sprintf("%s %s for %v", f.Kind, f.Target, f.Duration)
}

// ScheduleOptions shapes a random Schedule.
type ScheduleOptions struct {
	Seed  int64
	Nodes []string // every node that faults may hit
	// Managers are the managers among Nodes: one fault in three of the
	// kinds that take a Target hits the active manager.
	Managers []string
	// Count is how many faults; the first len(Kinds) are each kind once,
	// in an order the seed picks, so a short run still has every kind.
	Count int
	// Kinds default to kill, pause, partition, cut and isolate.
	Kinds []string
	// MinDuration and MaxDuration bound each fault. Default 1 s and 3 s.
	MinDuration, MaxDuration time.Duration
}

// Schedule returns the faults for a seed: the same options and seed give
// the same faults, so a failing run replays from its seed.
func Schedule(o ScheduleOptions) ([]Fault, error) {
	if len(o.Nodes) < 2 {
		return nil, fmt.Errorf("netlab: Schedule: want at least 2 nodes, got %d", len(o.Nodes))
	}
	if len(o.Kinds) == 0 {
		o.Kinds = []string{FaultKill, FaultPause, FaultPartition, FaultCut, FaultIsolate}
	}
	for _, k := range o.Kinds {
		if !slices.Contains([]string{FaultKill, FaultPause, FaultPartition, FaultCut, FaultIsolate}, k) {
			return nil, fmt.Errorf("netlab: Schedule: unknown fault kind %q", k)
		}
	}
	if o.MinDuration <= 0 {
		o.MinDuration = time.Second
	}
	if o.MaxDuration < o.MinDuration {
		o.MaxDuration = max(3*time.Second, o.MinDuration)
	}
	if o.Count <= 0 {
		o.Count = len(o.Kinds)
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x6e65746c6162))
	kinds := slices.Clone(o.Kinds)
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var out []Fault
	for i := range o.Count {
		k := kinds[i%len(kinds)]
		if i >= len(kinds) {
			k = o.Kinds[rng.IntN(len(o.Kinds))]
		}
		f := Fault{Kind: k, Duration: o.MinDuration + time.Duration(rng.Int64N(int64(o.MaxDuration-o.MinDuration)+1))}
		switch k {
		case FaultKill, FaultPause, FaultIsolate:
			f.Target = o.Nodes[rng.IntN(len(o.Nodes))]
			if len(o.Managers) > 0 && rng.IntN(3) == 0 {
				f.Target = ActiveTarget
			}
		case FaultCut:
			a := rng.IntN(len(o.Nodes))
			b := (a + 1 + rng.IntN(len(o.Nodes)-1)) % len(o.Nodes)
			f.From, f.To = o.Nodes[a], o.Nodes[b]
		case FaultPartition:
			f.Groups = split(rng, o.Nodes)
		}
		out = append(out, f)
	}
	return out, nil
}

// RecoveryOptions shapes a RecoverySchedule.
type RecoveryOptions struct {
	Seed  int64
	Nodes []string // every node a partition may split
	// Kills is how many times the active manager is killed with kill -9
	// and restarted, Heals how many times the hosts are partitioned and
	// healed.
	Kills, Heals int
	// Down is how long each fault lasts. Default 4 s: longer than failure
	// detection and the write lease of the "local" profile, so that a
	// stand-by takes over before the killed manager restarts, and a
	// partition lasts until each side has declared the other failed.
	Down time.Duration
}

// RecoverySchedule returns the faults that measure recovery: kill -9 of the
// active manager and a partition of the hosts into two random groups, in
// turn until each count is reached. The partitions' groups come from the
// seed, so a run replays from it.
func RecoverySchedule(o RecoveryOptions) ([]Fault, error) {
	if len(o.Nodes) < 2 {
		return nil, fmt.Errorf("netlab: RecoverySchedule: want at least 2 nodes, got %d", len(o.Nodes))
	}
	if o.Kills < 0 || o.Heals < 0 || o.Kills+o.Heals == 0 {
		return nil, fmt.Errorf("netlab: RecoverySchedule: want Kills and Heals >= 0, not both 0, got %d and %d", o.Kills, o.Heals)
	}
	if o.Down < 0 {
		return nil, fmt.Errorf("netlab: RecoverySchedule: Down must not be negative, got %v", o.Down)
	}
	if o.Down == 0 {
		o.Down = 4 * time.Second
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x7265636f76657279))
	var out []Fault
	for k, h := 0, 0; k < o.Kills || h < o.Heals; {
		if k < o.Kills {
			out = append(out, Fault{Kind: FaultKill, Target: ActiveTarget, Duration: o.Down})
			k++
		}
		if h < o.Heals {
			out = append(out, Fault{Kind: FaultPartition, Groups: split(rng, o.Nodes), Duration: o.Down})
			h++
		}
	}
	return out, nil
}

// split divides nodes into two non-empty groups, each sorted.
func split(rng *rand.Rand, nodes []string) [][]string {
	perm := rng.Perm(len(nodes))
	cut := 1 + rng.IntN(len(nodes)-1)
	var g1, g2 []string
	for j, p := range perm {
		if j < cut {
			g1 = append(g1, nodes[p])
		} else {
			g2 = append(g2, nodes[p])
		}
	}
	slices.Sort(g1)
	slices.Sort(g2)
	return [][]string{g1, g2}
}
