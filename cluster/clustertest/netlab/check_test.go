//go:build linux

package netlab

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ack(node, key string, epoch uint64, from, to int) Op {
	return Op{Kind: OpWrite, Node: node, Key: key, Value: "v" + key, Invoke: at(from), Complete: at(to), Result: OK, Status: 201, Epoch: epoch}
}

// clean is a history that keeps every promise: manager-1 writes at epoch
// 1, is paused, manager-2 takes over at epoch 2, manager-1 resumes and
// acknowledges nothing more; both workers end with the whole catalog.
func clean(quorum bool) History {
	cat := map[string]string{"a": "va", "b": "vb", "c": "vc"}
	views := []View{{Domain: "d", Members: []string{"manager-1", "manager-2", "worker-1"}, Active: map[string]string{"mgt": "manager-2"}}}
	return History{
		Roles:  map[string]string{"manager-1": "manager", "manager-2": "manager", "worker-1": "worker"},
		Quorum: quorum,
		Ops: []Op{
			ack("manager-1", "a", 1, 0, 10),
			ack("manager-1", "b", 1, 20, 30),
			{Kind: OpWrite, Node: "manager-1", Key: "x", Invoke: at(100), Complete: at(1100), Result: Unknown},
			ack("manager-2", "c", 2, 1200, 1210),
			{Kind: OpWrite, Node: "manager-1", Key: "y", Invoke: at(3100), Complete: at(3110), Result: Fail, Status: 403},
			{Kind: OpWorkerWrite, Node: "worker-1", Key: "wz", Invoke: at(3200), Complete: at(3210), Result: Fail, Status: 403},
		},
		Faults:    []FaultRecord{{Fault: Fault{Kind: FaultPause, Target: "manager-1", Duration: 3 * time.Second}, Start: at(50), End: at(3050), WasActive: true}},
		FaultsEnd: at(3050),
		Finals: []Final{
			{Time: at(4000), Node: "manager-1", Catalog: cat, Views: views},
			{Time: at(4000), Node: "manager-2", Writable: true, Catalog: cat, Views: views},
			{Time: at(4000), Node: "worker-1", Catalog: cat, Views: views},
		},
	}
}

func promises(r Report) []string {
	var out []string
	for _, v := range r.Violations {
		if !slices.Contains(out, v.Promise) {
			out = append(out, v.Promise)
		}
	}
	return out
}

func TestCheckCleanHistoriesPass(t *testing.T) {
	for _, q := range []bool{false, true} {
		r := Check(clean(q), CheckOptions{})
		if len(r.Violations) > 0 || len(r.Overlaps) > 0 {
			t.Errorf("quorum %v: clean history: %v, overlaps %v", q, r.Violations, r.Overlaps)
		}
		if r.Acked != 3 {
			t.Errorf("quorum %v: acked %d writes, want 3", q, r.Acked)
		}
	}
}

// Each planted violation must be caught, and only its promise broken.
func TestCheckCatchesPlantedViolations(t *testing.T) {
	cases := []struct {
		name   string
		plant  func(h *History)
		quorum bool
		want   []string
	}{
		{"double write under one epoch", func(h *History) {
			h.Ops = append(h.Ops, ack("manager-1", "d", 2, 1300, 1310))
			addToFinals(h, "d")
		}, false, []string{PromiseOneEpoch}},
		{"two writers at once with quorum", func(h *History) {
			h.Faults = nil // no pause: manager-1 simply kept writing
			h.Ops = append(h.Ops, ack("manager-1", "d", 1, 1300, 1310))
			addToFinals(h, "d")
		}, true, []string{PromiseOneWriter}},
		{"lost acknowledged write", func(h *History) {
			delete(h.Finals[1].Catalog, "b")
		}, false, []string{PromiseNoLostWrite}},
		{"worker accepted a write", func(h *History) {
			h.Ops[len(h.Ops)-1].Result = OK
		}, false, []string{PromiseWorkerReadOnly}},
		{"worker accepted a write (its own record)", func(h *History) {
			h.Nodes = append(h.Nodes, NodeEvent{Time: at(3205), Node: "worker-1", Event: "accept", Key: "wz", Epoch: 2})
		}, false, []string{PromiseWorkerReadOnly}},
		{"stale ack after pause", func(h *History) {
			h.Ops[4] = ack("manager-1", "y", 1, 3100, 3110)
			addToFinals(h, "y")
		}, false, []string{PromiseNoStaleAck}},
		{"stale ack after isolation, with quorum", func(h *History) {
			h.Faults[0].Kind = FaultIsolate
			h.Ops[4] = ack("manager-1", "y", 1, 3100, 3110)
			addToFinals(h, "y")
		}, true, []string{PromiseOneWriter, PromiseNoStaleAck}},
		{"worker never converged", func(h *History) {
			h.Finals[2].Catalog = map[string]string{"a": "va", "b": "vb"}
		}, false, []string{PromiseCatalogConverged}},
		{"stale revision on a worker", func(h *History) {
			h.Finals[2].Catalog = map[string]string{"a": "va", "b": "vb", "c": "old"}
		}, false, []string{PromiseCatalogConverged}},
		{"converged only past the bound", func(h *History) {
			h.Finals[2].Time = h.FaultsEnd.Add(time.Minute)
		}, false, []string{PromiseCatalogConverged}},
		{"views differ", func(h *History) {
			h.Finals[2].Views = []View{{Domain: "d", Members: []string{"manager-1", "manager-2", "worker-1"}, Active: map[string]string{"mgt": "manager-1"}}}
		}, false, []string{PromiseViewConverged}},
		{"two writable at the end", func(h *History) {
			h.Finals[0].Writable = true
		}, false, []string{PromiseNoLostWrite}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := clean(c.quorum)
			c.plant(&h)
			got := promises(Check(h, CheckOptions{ConvergeBound: 10 * time.Second}))
			if !slices.Equal(got, c.want) {
				t.Errorf("broken promises %v, want %v", got, c.want)
			}
		})
	}
}

func addToFinals(h *History, key string) {
	for _, f := range h.Finals {
		f.Catalog[key] = "v" + key
	}
}

// Without a quorum, two writers in a partition are reported as an overlap
// window, not a violation; the deposed side's writes are not required to
// survive.
func TestCheckOverlapWithoutQuorum(t *testing.T) {
	h := clean(false)
	h.Faults = []FaultRecord{{Fault: Fault{Kind: FaultPartition, Groups: [][]string{{"manager-1"}, {"manager-2", "worker-1"}}}, Start: at(40), End: at(2000)}}
	h.Ops = append(h.Ops, ack("manager-1", "d", 1, 1500, 1510)) // lost at the heal
	r := Check(h, CheckOptions{})
	if len(r.Violations) > 0 {
		t.Errorf("violations %v, want none without quorum", r.Violations)
	}
	if len(r.Overlaps) != 1 || r.Overlaps[0].Old != "manager-1" || r.Overlaps[0].New != "manager-2" || r.Overlaps[0].To.Sub(r.Overlaps[0].From) != 290*time.Millisecond {
		t.Errorf("overlaps %+v, want manager-1 after manager-2 for 290ms", r.Overlaps)
	}
	h.Quorum = true
	if got := promises(Check(h, CheckOptions{})); !slices.Contains(got, PromiseOneWriter) || !slices.Contains(got, PromiseNoLostWrite) {
		t.Errorf("with quorum: broken %v, want %s and %s", got, PromiseOneWriter, PromiseNoLostWrite)
	}
}

// Without a quorum, a successor that became writable on its side of a
// partition deposes the old writer from that moment, even if its side
// took no write: the old side's writes at the lower epoch are the overlap,
// not lost writes.
func TestCheckOverlapFromWritableWithoutQuorum(t *testing.T) {
	h := clean(false)
	h.Faults = []FaultRecord{{Fault: Fault{Kind: FaultPartition, Groups: [][]string{{"manager-1"}, {"manager-2", "worker-1"}}}, Start: at(40), End: at(2000)}}
	h.Ops = slices.DeleteFunc(h.Ops, func(op Op) bool { return op.Key == "c" }) // manager-2's side wrote nothing
	h.Nodes = append(h.Nodes, NodeEvent{Time: at(1100), Node: "manager-2", Event: "writable", Value: new(true), Epoch: 2})
	h.Ops = append(h.Ops, ack("manager-1", "d", 1, 1500, 1510)) // lost at the heal
	r := Check(h, CheckOptions{})
	if len(r.Violations) > 0 {
		t.Errorf("violations %v, want none without quorum", r.Violations)
	}
	if len(r.Overlaps) != 1 || r.Overlaps[0].Old != "manager-1" || r.Overlaps[0].New != "manager-2" || r.Overlaps[0].To.Sub(r.Overlaps[0].From) != 400*time.Millisecond {
		t.Errorf("overlaps %+v, want manager-1 after manager-2 for 400ms", r.Overlaps)
	}
	h.Quorum = true
	if got := promises(Check(h, CheckOptions{})); !slices.Equal(got, []string{PromiseNoLostWrite}) {
		t.Errorf("with quorum: broken %v, want %s", got, PromiseNoLostWrite)
	}
}

// NoCatchUp states the example catalog's weaker promise: a node restarted
// after a write need not hold it, one that ran through it must.
func TestCheckNoCatchUp(t *testing.T) {
	h := clean(false)
	h.Starts = map[string][]time.Time{"worker-1": {at(0), at(1150)}}
	h.Finals[2].Catalog = map[string]string{"c": "vc"} // lost a and b in its restart
	if got := promises(Check(h, CheckOptions{})); !slices.Equal(got, []string{PromiseCatalogConverged}) {
		t.Errorf("strict: broken %v, want %s", got, PromiseCatalogConverged)
	}
	if r := Check(h, CheckOptions{NoCatchUp: true}); len(r.Violations) > 0 {
		t.Errorf("no catch-up: %v, want none", r.Violations)
	}
	h.Finals[2].Catalog = map[string]string{"a": "va", "b": "vb"} // lacks c, written after it was back
	if got := promises(Check(h, CheckOptions{NoCatchUp: true})); !slices.Equal(got, []string{PromiseCatalogConverged}) {
		t.Errorf("no catch-up, missing a later write: broken %v, want %s", got, PromiseCatalogConverged)
	}
}

func TestReadNodeHistory(t *testing.T) {
	in := `{"time":"2026-01-01T00:00:00.5Z","node":"manager-1","event":"accept","key":"k1","epoch":3,"seq":1}
{"time":"2026-01-01T00:00:00.6Z","node":"worker-1","event":"apply","key":"k1","epoch":3,"seq":1}
{"time":"2026-01-01T00:00:00.7Z","node":"manager-1","event":"reject","key":"k2","epoch":3,"seq":2}

{"time":"2026-01-01T00:00:01Z","node":"worker-1","event":"revision","revision":"r-9"}
{"time":"2026-01-01T00:00:02Z","node":"manager-2","event":"writable","value":true,"epoch":4}
`
	evs, err := ReadNodeHistory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[0].Epoch != 3 || evs[0].Seq != 1 || evs[3].Revision != "r-9" || evs[4].Value == nil || !*evs[4].Value || !evs[0].Time.Equal(t0.Add(500*time.Millisecond)) {
		t.Errorf("read %+v", evs)
	}
	for _, bad := range []string{
		`{"node":"m","event":"accept","key":"k"}`,
		`{"time":"2026-01-01T00:00:00Z","event":"accept","key":"k"}`,
		`{"time":"2026-01-01T00:00:00Z","node":"m","event":"accept"}`,
		`{"time":"2026-01-01T00:00:00Z","node":"m","event":"writable"}`,
		`{"time":"2026-01-01T00:00:00Z","node":"m","event":"revision"}`,
		`{"time":"2026-01-01T00:00:00Z","node":"m","event":"explode"}`,
		`not json`,
	} {
		if _, err := ReadNodeHistory(strings.NewReader("\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: error %v, want one naming line 2", bad, err)
		}
	}
}

func TestScheduleReplaysFromSeed(t *testing.T) {
	o := ScheduleOptions{Seed: 42, Nodes: []string{"manager-1", "manager-2", "worker-1"}, Managers: []string{"manager-1", "manager-2"}, Count: 12}
	a, err := Schedule(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Schedule(o)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different schedules:\n%v\n%v", a, b)
	}
	o.Seed = 43
	if c, _ := Schedule(o); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 42 and 43 gave the same schedule %v", a)
	}
	kinds := map[string]bool{}
	for _, f := range a[:5] {
		kinds[f.Kind] = true
		if f.Duration < time.Second || f.Duration > 3*time.Second {
			t.Errorf("%v: duration outside [1s, 3s]", f)
		}
	}
	if len(kinds) != 5 {
		t.Errorf("first five faults %v: want each kind once", a[:5])
	}
	if _, err := Schedule(ScheduleOptions{Nodes: []string{"a", "b"}, Kinds: []string{"meteor"}}); err == nil || !strings.Contains(err.Error(), "meteor") {
		t.Errorf("unknown kind: error %v, want one naming it", err)
	}
}
