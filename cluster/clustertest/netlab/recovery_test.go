//go:build linux

package netlab

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRecoveryScheduleAlternatesAndReplays(t *testing.T) {
	nodes := []string{"manager-1", "manager-2", "worker-1", "worker-2"}
	o := RecoveryOptions{Seed: 7, Nodes: nodes, Kills: 3, Heals: 5}
	a, err := RecoverySchedule(o)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range a {
		kinds = append(kinds, f.Kind)
		if f.Duration != 4*time.Second {
			t.Errorf("%v: want the default 4s", f)
		}
		switch f.Kind {
		case FaultKill:
			if f.Target != ActiveTarget {
				t.Errorf("%v: want the active manager as target", f)
			}
		case FaultPartition:
			if len(f.Groups) != 2 || len(f.Groups[0]) == 0 || len(f.Groups[1]) == 0 || len(f.Groups[0])+len(f.Groups[1]) != len(nodes) {
				t.Errorf("%v: want every node in one of two non-empty groups", f)
			}
		}
	}
	want := "kill partition kill partition kill partition partition partition"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("kinds %q, want %q", got, want)
	}
	if b, _ := RecoverySchedule(o); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different schedules:\n%v\n%v", a, b)
	}
	o.Seed = 8
	if c, _ := RecoverySchedule(o); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 7 and 8 gave the same partitions %v", a)
	}
	for _, bad := range []RecoveryOptions{
		{Nodes: nodes},
		{Nodes: nodes, Kills: -1, Heals: 2},
		{Nodes: nodes, Kills: 1, Down: -time.Second},
		{Nodes: nodes[:1], Kills: 1},
	} {
		if _, err := RecoverySchedule(bad); err == nil || !strings.Contains(err.Error(), "RecoverySchedule") {
			t.Errorf("%+v: error %v, want one from RecoverySchedule", bad, err)
		}
	}
}

func TestSamplesQuantiles(t *testing.T) {
	var s Samples
	if s.Quantile(0.5) != -1 || s.String() != "no samples" {
		t.Errorf("empty: p50 %v, %q", s.Quantile(0.5), s.String())
	}
	for i := 20; i >= 1; i-- { // out of order on purpose
		s.Add(time.Duration(i) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.05: 1, 0.5: 10, 0.51: 11, 0.95: 19, 0.99: 20, 1: 20} {
		if got := s.Quantile(q); got != want*time.Millisecond {
			t.Errorf("q %v: %v, want %v", q, got, want*time.Millisecond)
		}
	}
	if got, want := s.String(), "n=20 p50=10ms p99=20ms max=20ms"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	// A fault that never recovered ranks above every time.
	s.Add(-1)
	if s.N() != 21 || s.Never() != 1 || s.Quantile(0.99) != -1 || s.Quantile(0.5) != 11*time.Millisecond {
		t.Errorf("with a never: n %d never %d p99 %v p50 %v", s.N(), s.Never(), s.Quantile(0.99), s.Quantile(0.5))
	}
	if !strings.Contains(s.String(), "p99=never") || !strings.Contains(s.String(), "1 never within the bound") {
		t.Errorf("String %q: want the never shown", s.String())
	}
}

func TestRecoveryAdd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(kind string, active bool, down, recovered, view time.Duration) FaultRecord {
		return FaultRecord{Fault: Fault{Kind: kind, Duration: down}, Start: t0, End: t0.Add(down), WasActive: active, Recovered: recovered, ViewAfter: view}
	}
	var r Recovery
	r.Add(Summary{Faults: []FaultRecord{
		rec(FaultKill, true, 4*time.Second, 900*time.Millisecond, 120*time.Millisecond), // the stand-by took over
		rec(FaultKill, true, time.Second, 1100*time.Millisecond, 130*time.Millisecond),  // back only with the restart
		rec(FaultKill, false, time.Second, 5*time.Millisecond, 100*time.Millisecond),    // a worker: not a failover
		rec(FaultPartition, false, 4*time.Second, 10*time.Millisecond, 400*time.Millisecond),
		rec(FaultPause, true, time.Second, 900*time.Millisecond, 100*time.Millisecond),
	}})
	r.Add(Summary{Faults: []FaultRecord{
		rec(FaultPartition, false, 4*time.Second, 10*time.Millisecond, -1),
		rec(FaultCut, false, time.Second, 10*time.Millisecond, 0),
	}})
	if r.WritesBack.N() != 2 || r.ByStandby != 1 || r.Restarted.N() != 2 {
		t.Errorf("kills: writes back n=%d, by stand-by %d, restarted n=%d; want 2, 1, 2", r.WritesBack.N(), r.ByStandby, r.Restarted.N())
	}
	if r.WritesBack.Quantile(1) != 1100*time.Millisecond {
		t.Errorf("writes back max %v, want 1.1s", r.WritesBack.Quantile(1))
	}
	if r.Healed.N() != 2 || r.Healed.Never() != 1 || r.Reconnected.N() != 1 {
		t.Errorf("healed n=%d never=%d, reconnected n=%d; want 2, 1, 1", r.Healed.N(), r.Healed.Never(), r.Reconnected.N())
	}
	out := r.String()
	for _, want := range []string{"writes back after kill -9 of the active manager: n=2 p50=900ms", "(1 of them before it restarted)", "one view after a partition healed: n=2 p50=400ms p99=never"} {
		if !strings.Contains(out, want) {
			t.Errorf("String:\n%s\nwant it to contain %q", out, want)
		}
	}
	if s := (Recovery{}).String(); !strings.HasPrefix(s, "no recovery samples") {
		t.Errorf("empty: %q", s)
	}
}
