//go:build linux

package netlab

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Promises the checker asserts; a Violation names one.
const (
	// PromiseOneEpoch: no two nodes ever accept a write under one epoch.
	PromiseOneEpoch = "one-writer-per-epoch"
	// PromiseOneWriter: with a quorum, a write accepted at a lower epoch
	// never follows one accepted at a higher epoch (no overlapping
	// writers). Without a quorum such a window is reported as an Overlap.
	PromiseOneWriter = "one-writer-at-a-time"
	// PromiseNoLostWrite: every acknowledged write is on the final active
	// manager (if it has run since before the write).
	PromiseNoLostWrite = "no-lost-write"
	// PromiseWorkerReadOnly: a worker never accepts a write.
	PromiseWorkerReadOnly = "worker-read-only"
	// PromiseNoStaleAck: a paused active, or with a quorum a cut-off one,
	// once back, acknowledges no write at its old epoch after another node
	// has taken over. (Without a quorum a cut-off active's writes are an
	// Overlap: each side of a partition has a writer.)
	PromiseNoStaleAck = "no-stale-ack"
	// PromiseCatalogConverged: once the faults stop, every live worker holds
	// the active manager's catalog within the bound.
	PromiseCatalogConverged = "catalog-converged"
	// PromiseViewConverged: once the faults stop, every live node sees the
	// same live members and the same active manager.
	PromiseViewConverged = "view-converged"
)

// Violation is a broken promise with what shows it.
type Violation struct {
	Promise string
	Detail  string
}

func (v Violation) String() string { return v.Promise + ": " + v.Detail }

// Overlap is a window in which a deposed writer still acknowledged writes
// after its successor had: a violation with a quorum, the price of
// availability without one.
type Overlap struct {
	Old, New           string // nodes
	OldEpoch, NewEpoch uint64
	From, To           time.Time
}

// Report is what Check found.
type Report struct {
	Violations []Violation
	Overlaps   []Overlap
	Acked      int // acknowledged writes
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// ConvergeBound is how long after History.FaultsEnd every live node
	// must hold the final catalog and view. Default 15 s.
	ConvergeBound time.Duration
	// NoCatchUp states what the example catalog promises instead of "no
	// acknowledged write is ever lost": it is in memory and learns changes
	// only from the active manager's broadcasts, with no catch-up after a
	// restart or a partition. So a write must be on a node only if the
	// node was back in the view before the write began and no fault
	// separated it from the writer while the write went out. Without it,
	// every acknowledged write must be on the final active manager and on
	// every worker.
	NoCatchUp bool
}

// catchUpGrace is how long around a fault a write's broadcast may still
// miss a node: before it, the broadcast may not have gone out; after it,
// the writer may not have seen the node back yet (the time to one view is
// added).
const catchUpGrace = time.Second

// separated reports whether a fault in h cut node off from writer (or
// froze one of them) at some time in [from, to].
func separated(h History, node, writer string, from, to time.Time) bool {
	for _, f := range h.Faults {
		end := f.End
		if end.IsZero() {
			end = to
		}
		end = end.Add(catchUpGrace + max(f.ViewAfter, 0))
		if f.Start.After(to) || end.Before(from) {
			continue
		}
		switch f.Kind {
		case FaultPause, FaultIsolate, FaultKill:
			if f.Target == node || f.Target == writer {
				return true
			}
		case FaultCut:
			if (f.From == node && f.To == writer) || (f.From == writer && f.To == node) {
				return true
			}
		case FaultPartition:
			gn, gw := -1, -1
			for i, g := range f.Groups {
				if slices.Contains(g, node) {
					gn = i
				}
				if slices.Contains(g, writer) {
					gw = i
				}
			}
			if gn != gw {
				return true
			}
		}
	}
	return false
}

// mustHold reports whether node must hold the write op acknowledged.
func mustHold(h History, o CheckOptions, node string, op Op) bool {
	if !o.NoCatchUp {
		return true
	}
	if ls := lastStart(h, node); !ls.IsZero() && !ls.Before(op.Invoke) {
		return false
	}
	return node == op.Node || !separated(h, node, op.Node, op.Invoke, op.Complete.Add(catchUpGrace))
}

// accept is a write some node accepted: it happened at some instant in
// [from, to].
type accept struct {
	node     string
	key      string
	epoch    uint64
	from, to time.Time
}

// Check asserts the promises over h.
func Check(h History, o CheckOptions) Report {
	if o.ConvergeBound <= 0 {
		o.ConvergeBound = 15 * time.Second
	}
	var r Report
	acc := accepts(h)
	for _, a := range acc {
		if h.Roles[a.node] == "worker" {
			r.Violations = append(r.Violations, Violation{PromiseWorkerReadOnly,
				fmt.Sprintf("worker %s accepted write %q at %s", a.node, a.key, a.to.Format(time.RFC3339Nano))})
		}
	}
	var mgr []accept
	for _, a := range acc {
		if h.Roles[a.node] != "worker" {
			mgr = append(mgr, a)
		}
	}
	r.checkEpochs(h, mgr)
	r.checkStale(h, mgr)
	r.checkLost(h, o)
	r.checkConverged(h, o)
	return r
}

// accepts are the writes the clients saw acknowledged and those the
// nodes' records say they accepted.
func accepts(h History) []accept {
	var out []accept
	for _, op := range h.Ops {
		if (op.Kind == OpWrite || op.Kind == OpWorkerWrite) && op.Result == OK {
			out = append(out, accept{op.Node, op.Key, op.Epoch, op.Invoke, op.Complete})
		}
	}
	for _, e := range h.Nodes {
		if e.Event == "accept" {
			out = append(out, accept{e.Node, e.Key, e.Epoch, e.Time, e.Time})
		}
	}
	return out
}

// tenure is every write one node accepted under one epoch.
type tenure struct {
	node  string
	epoch uint64
	// first is the earliest instant by which one of its writes had
	// certainly happened (or, without a quorum, it was writable); last the
	// latest instant at which one may still have begun, zero if it
	// accepted none.
	first, last time.Time
	n           int
}

func (r *Report) checkEpochs(h History, acc []accept) {
	quorum := h.Quorum
	byEpoch := map[uint64]map[string]bool{}
	ten := map[string]*tenure{}
	// Without a quorum a successor deposes the old writer from the moment
	// it is writable on its side, whether or not its side takes a write:
	// the heal keeps the higher epoch. So its tenure starts then. (With a
	// quorum the promise is about accepted writes only.)
	if !quorum {
		for _, e := range h.Nodes {
			if e.Event != "writable" || e.Value == nil || !*e.Value || h.Roles[e.Node] == "worker" {
				continue
			}
			k := fmt.Sprintf("%s/%d", e.Node, e.Epoch)
			if t := ten[k]; t == nil {
				ten[k] = &tenure{node: e.Node, epoch: e.Epoch, first: e.Time}
			} else if e.Time.Before(t.first) {
				t.first = e.Time
			}
		}
	}
	for _, a := range acc {
		if byEpoch[a.epoch] == nil {
			byEpoch[a.epoch] = map[string]bool{}
		}
		byEpoch[a.epoch][a.node] = true
		k := fmt.Sprintf("%s/%d", a.node, a.epoch)
		t := ten[k]
		if t == nil {
			t = &tenure{node: a.node, epoch: a.epoch, first: a.to, last: a.from}
			ten[k] = t
		}
		if t.n == 0 && t.last.IsZero() {
			t.last = a.from
		}
		if a.to.Before(t.first) {
			t.first = a.to
		}
		if a.from.After(t.last) {
			t.last = a.from
		}
		t.n++
	}
	for _, e := range slices.Sorted(maps.Keys(byEpoch)) {
		if len(byEpoch[e]) > 1 {
			r.Violations = append(r.Violations, Violation{PromiseOneEpoch,
				fmt.Sprintf("epoch %d: writes accepted by %s", e, strings.Join(slices.Sorted(maps.Keys(byEpoch[e])), " and "))})
		}
	}
	ts := slices.Collect(maps.Values(ten))
	sort.Slice(ts, func(i, j int) bool { return ts[i].epoch < ts[j].epoch })
	for i, old := range ts {
		for _, nw := range ts[i+1:] {
			if nw.epoch == old.epoch || nw.node == old.node || !nw.first.Before(old.last) {
				continue
			}
			ov := Overlap{Old: old.node, New: nw.node, OldEpoch: old.epoch, NewEpoch: nw.epoch, From: nw.first, To: old.last}
			r.Overlaps = append(r.Overlaps, ov)
			if quorum {
				r.Violations = append(r.Violations, Violation{PromiseOneWriter,
					fmt.Sprintf("%s accepted at epoch %d until %s, after %s had accepted at epoch %d by %s (%v of two writers)",
						old.node, old.epoch, old.last.Format(time.RFC3339Nano), nw.node, nw.epoch, nw.first.Format(time.RFC3339Nano), old.last.Sub(nw.first))})
			}
		}
	}
}

// checkStale: after a pause or isolation of the node that was active, it
// must not acknowledge a write at its old epoch once another node has
// accepted at a higher one (or said it became writable at one).
func (r *Report) checkStale(h History, acc []accept) {
	for _, f := range h.Faults {
		if f.Kind != FaultPause && f.Kind != FaultIsolate {
			continue
		}
		// Without a quorum an isolated active keeps writing on its side of
		// the cut (the documented split brain) until it learns of the new
		// active after the heal: checkEpochs reports that as an Overlap.
		if f.Kind == FaultIsolate && !h.Quorum {
			continue
		}
		p := f.Target
		var before uint64
		var had bool
		for _, a := range acc {
			if a.node == p && !a.to.After(f.Start) && a.epoch >= before {
				before, had = a.epoch, true
			}
		}
		if !had {
			continue
		}
		// Takeovers: instants by which another node certainly wrote (or
		// became writable) at a higher epoch, after the fault began.
		var takeovers []time.Time
		for _, a := range acc {
			if a.node != p && a.epoch > before && a.to.After(f.Start) {
				takeovers = append(takeovers, a.to)
			}
		}
		for _, e := range h.Nodes {
			if e.Event == "writable" && e.Node != p && e.Value != nil && *e.Value && e.Epoch > before && e.Time.After(f.Start) {
				takeovers = append(takeovers, e.Time)
			}
		}
		if len(takeovers) == 0 {
			continue
		}
		first := slices.MinFunc(takeovers, func(a, b time.Time) int { return a.Compare(b) })
		for _, a := range acc {
			if a.node == p && a.epoch <= before && !a.from.Before(f.End) && first.Before(a.to) {
				r.Violations = append(r.Violations, Violation{PromiseNoStaleAck,
					fmt.Sprintf("%s, back from %s at %s, acknowledged %q at its old epoch %d (completed %s) after another node took over at %s",
						p, f.Kind, f.End.Format(time.RFC3339Nano), a.key, a.epoch, a.to.Format(time.RFC3339Nano), first.Format(time.RFC3339Nano))})
			}
		}
	}
}

// finalActive is the one final node that is writable, or "".
func finalActive(h History) (Final, bool) {
	var out []Final
	for _, f := range h.Finals {
		if f.Writable {
			out = append(out, f)
		}
	}
	if len(out) != 1 {
		return Final{}, false
	}
	return out[0], true
}

// lastStart is when node last (re)started, zero if never recorded.
func lastStart(h History, node string) time.Time {
	s := h.Starts[node]
	if len(s) == 0 {
		return time.Time{}
	}
	return slices.MaxFunc(s, func(a, b time.Time) int { return a.Compare(b) })
}

// fenced reports whether op was acknowledged, without a quorum, by a
// deposed writer in an Overlap: its successor's nodes refuse it by epoch,
// so it need survive nowhere; the Overlap reports it.
func (r *Report) fenced(h History, op Op) bool {
	if h.Quorum {
		return false
	}
	for _, ov := range r.Overlaps {
		if ov.Old == op.Node && ov.OldEpoch == op.Epoch {
			return true
		}
	}
	return false
}

func (r *Report) checkLost(h History, o CheckOptions) {
	fa, ok := finalActive(h)
	if !ok {
		n := 0
		for _, f := range h.Finals {
			if f.Writable {
				n++
			}
		}
		r.Violations = append(r.Violations, Violation{PromiseNoLostWrite, fmt.Sprintf("no single active manager once the faults stopped (%d writable)", n)})
		return
	}
	var lost []string
	for _, op := range h.Ops {
		if op.Kind != OpWrite || op.Result != OK {
			continue
		}
		r.Acked++
		if r.fenced(h, op) || !mustHold(h, o, fa.Node, op) {
			continue
		}
		if v, ok := fa.Catalog[op.Key]; !ok || v != op.Value {
			lost = append(lost, fmt.Sprintf("%q (acked by %s at epoch %d, %s)", op.Key, op.Node, op.Epoch, op.Complete.Format(time.RFC3339Nano)))
		}
	}
	if len(lost) > 0 {
		more := ""
		if len(lost) > 5 {
			more = fmt.Sprintf(" and %d more", len(lost)-5)
			lost = lost[:5]
		}
		r.Violations = append(r.Violations, Violation{PromiseNoLostWrite,
			fmt.Sprintf("final active %s lacks %s%s", fa.Node, strings.Join(lost, ", "), more)})
	}
}

func (r *Report) checkConverged(h History, o CheckOptions) {
	bound := o.ConvergeBound
	fa, ok := finalActive(h)
	if ok {
		for _, f := range h.Finals {
			if h.Roles[f.Node] != "worker" {
				continue
			}
			if late := f.Time.Sub(h.FaultsEnd); late > bound {
				r.Violations = append(r.Violations, Violation{PromiseCatalogConverged,
					fmt.Sprintf("%s observed %v after the faults stopped, past the bound of %v", f.Node, late.Round(time.Millisecond), bound)})
			}
			// Compare what both must hold.
			for _, op := range h.Ops {
				if op.Kind != OpWrite || op.Result != OK || r.fenced(h, op) || !mustHold(h, o, f.Node, op) || !mustHold(h, o, fa.Node, op) {
					continue
				}
				want, inActive := fa.Catalog[op.Key]
				got, inWorker := f.Catalog[op.Key]
				if inActive != inWorker || want != got {
					r.Violations = append(r.Violations, Violation{PromiseCatalogConverged,
						fmt.Sprintf("%s holds %q=%q, the active %s holds %q=%q (%v after the faults stopped)",
							f.Node, op.Key, got, fa.Node, op.Key, want, f.Time.Sub(h.FaultsEnd).Round(time.Millisecond))})
					break
				}
			}
		}
	}
	// Views: per domain, every live node that sees it must see the same.
	live := map[string]bool{}
	for _, f := range h.Finals {
		live[f.Node] = true
	}
	type seen struct{ node, desc string }
	byDomain := map[string][]seen{}
	for _, f := range h.Finals {
		for _, v := range f.Views {
			byDomain[v.Domain] = append(byDomain[v.Domain], seen{f.Node, describeView(v)})
		}
	}
	for _, d := range slices.Sorted(maps.Keys(byDomain)) {
		ss := byDomain[d]
		for _, s := range ss[1:] {
			if s.desc != ss[0].desc {
				r.Violations = append(r.Violations, Violation{PromiseViewConverged,
					fmt.Sprintf("domain %s: %s sees %s, %s sees %s", d, ss[0].node, ss[0].desc, s.node, s.desc)})
				break
			}
		}
	}
}

func describeView(v View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "members [%s]", strings.Join(v.Members, " "))
	for _, sd := range slices.Sorted(maps.Keys(v.Active)) {
		fmt.Fprintf(&b, " active(%s)=%s", sd, v.Active[sd])
	}
	return b.String()
}
