//go:build linux

package netlab

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	bins      Binaries
	buildErr  error
)

// binaries builds the example worker and manager once per test binary.
func binaries(t *testing.T) Binaries {
	t.Helper()
	if err := Require(); err != nil {
		t.Skip(err)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netlab-bin-")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bins, buildErr = Build(ctx, dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

// seed is CARBON_NETLAB_SEED when set (to replay a run), else the clock.
func seed(t *testing.T) int64 {
	if s := os.Getenv("CARBON_NETLAB_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CARBON_NETLAB_SEED: want an integer, got %q", s)
		}
		return v
	}
	return time.Now().UnixNano()
}

// runLab runs one pattern and fails the test on a broken promise the
// pattern makes.
func runLab(t *testing.T, o Options) RunResult {
	t.Helper()
	o.Bin = binaries(t)
	o.Dir = t.TempDir()
	o.Progress = testWriter{t}
	// An interrupt (Ctrl-C, go test's timeout) ends the run through its
	// context, so the lab removes its namespaces and processes.
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, 3*time.Minute)
	defer cancel()
	t.Logf("pattern %d seed %d (replay with CARBON_NETLAB_SEED=%d)", o.Pattern, o.Seed, o.Seed)
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	if !res.NodeRecords {
		t.Log("netlab: the example servers have no -history flag: their own records are not checked, only what the clients saw")
	}
	t.Log("\n" + res.Summary.String())
	for _, v := range res.Report.Violations {
		t.Errorf("%s (logs: %s)", v, o.Dir)
	}
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// TestPatterns runs patterns 1, 2 and 3 as real processes with every kind
// of fault once, in parallel (each in namespaces of its own).
func TestPatterns(t *testing.T) {
	binaries(t)
	for p := 1; p <= 3; p++ {
		t.Run(fmt.Sprintf("pattern%d", p), func(t *testing.T) {
			t.Parallel()
			res := runLab(t, Options{Pattern: p, Seed: seed(t) + int64(p)})
			// CI runs this test only: it must take every pattern through
			// every kind of fault.
			var kinds []string
			for _, f := range res.History.Faults {
				kinds = append(kinds, f.Kind)
			}
			for _, k := range []string{FaultKill, FaultPause, FaultPartition, FaultCut, FaultIsolate} {
				if !slices.Contains(kinds, k) {
					t.Errorf("pattern %d ran faults %v: no %s", p, kinds, k)
				}
			}
		})
	}
	// The active manager killed (kill -9), frozen (SIGSTOP), or cut off on
	// every link, for longer than failure detection: the stand-by must take
	// over, and the old active must acknowledge nothing at its old epoch
	// once back (no-stale-ack is among the promises runLab fails on).
	for _, kind := range []string{FaultKill, FaultPause, FaultIsolate} {
		t.Run("pattern2-"+kind+"-active", func(t *testing.T) {
			t.Parallel()
			res := runLab(t, Options{Pattern: 2, Seed: seed(t), Faults: []Fault{{Kind: kind, Target: ActiveTarget, Duration: 3 * time.Second}}})
			f := res.History.Faults[0]
			if !f.WasActive {
				t.Fatalf("%s hit %s, which was not the active manager", kind, f.Target)
			}
			tookOver := false
			for _, op := range res.History.Ops {
				if op.Kind == OpWrite && op.Result == OK && op.Node != f.Target && op.Complete.After(f.Start) && op.Complete.Before(f.End) {
					tookOver = true
				}
			}
			if !tookOver {
				t.Errorf("no other manager acknowledged a write during the %v %s of %s", f.Duration, kind, f.Target)
			}
		})
	}
}

// With a quorum (pattern 3: three managers, quorum three), cutting the
// active manager off with a worker leaves it in a minority: it must turn
// read-only while the majority elects a new active, so no write is ever
// acknowledged by two writers (one-writer-at-a-time fails runLab).
func TestQuorumPartitionOfTheActive(t *testing.T) {
	binaries(t)
	t.Parallel()
	res := runLab(t, Options{Pattern: 3, Seed: seed(t), Faults: []Fault{{Kind: FaultPartition,
		Groups: [][]string{{"manager-1", "worker-1"}, {"manager-2", "manager-3", "worker-2"}}, Duration: 3 * time.Second}}})
	f := res.History.Faults[0]
	var minority, majority bool
	for _, op := range res.History.Ops {
		if op.Kind != OpWrite || op.Result != OK || op.Invoke.Before(f.Start.Add(2*time.Second)) || op.Complete.After(f.End) {
			continue
		}
		if op.Node == "manager-1" {
			minority = true
		} else {
			majority = true
		}
	}
	if minority || !majority {
		t.Errorf("late in the partition: minority manager-1 acknowledged writes %v (want false), the majority %v (want true)", minority, majority)
	}
}

// TestSoak runs many seeds over the three patterns for
// CARBON_NETLAB_SOAK (a duration such as 10m), ten faults a run, and
// prints the recovery figures (Recovery): after kill -9 of the active
// manager the time until writes succeed again, after a heal the time until
// one view.
func TestSoak(t *testing.T) {
	d := os.Getenv("CARBON_NETLAB_SOAK")
	if d == "" {
		t.Skip("soak: set CARBON_NETLAB_SOAK to a duration (such as 10m) to run it")
	}
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("CARBON_NETLAB_SOAK: want a duration such as 10m, got %q", d)
	}
	base := seed(t)
	var rec Recovery
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		res := runLab(t, Options{Pattern: 2 + i%2, Seed: base + int64(i), FaultCount: 10})
		rec.Add(res.Summary)
		if t.Failed() {
			break
		}
	}
	t.Log("\n" + rec.String())
}
