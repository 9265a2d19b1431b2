//go:build linux

package netlab

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// writer writes a new key at a time through the managers, as a balancer
// would, each attempt recorded as an Op. The sticky writer tries first the
// manager that last acknowledged, then the others; the other writer starts
// at the next manager each time (a round-robin balancer that learns who
// is active from the refusals), so both sides of a partition get writes and
// two writers would show. Every tenth operation is also sent straight to a
// worker, which must refuse it.
func (l *lab) writer(ctx context.Context, name string, sticky bool) {
	for i := 1; ctx.Err() == nil; i++ {
		key, val := fmt.Sprintf("%s%d", name, i), fmt.Sprintf("v%d", i)
		l.mu.Lock()
		order := slices.Clone(l.managers)
		if j := slices.Index(order, l.pref); sticky && j > 0 {
			order[0], order[j] = order[j], order[0]
		}
		if !sticky {
			k := i % len(order)
			order = append(order[k:], order[:k]...)
		}
		l.mu.Unlock()
		acked := false
		for _, m := range order {
			op := l.cl.write(ctx, OpWrite, m, key, val)
			if ctx.Err() != nil && op.Result != OK {
				return
			}
			l.record(op)
			if op.Result == OK && sticky {
				l.mu.Lock()
				l.pref = m
				l.mu.Unlock()
			}
			if op.Result == OK {
				acked = true
				break
			}
		}
		if i%10 == 0 {
			w := l.workers[(i/10)%len(l.workers)]
			if op := l.cl.write(ctx, OpWorkerWrite, w, "w"+key, val); ctx.Err() == nil {
				l.record(op)
			}
		}
		if !acked {
			sleepCtx(ctx, 50*time.Millisecond) // no manager takes writes: do not spin
		} else {
			sleepCtx(ctx, 10*time.Millisecond)
		}
	}
}

// reader reads the catalog through the workers in turn.
func (l *lab) reader(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		w := l.workers[i%len(l.workers)]
		op := Op{Kind: OpRead, Node: w, Invoke: time.Now()}
		cat, err := l.cl.catalog(ctx, w)
		op.Complete = time.Now()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			op.Result, op.Err = Unknown, err.Error()
		} else {
			op.Result, op.Value = OK, fmt.Sprint(len(cat))
		}
		l.record(op)
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

func (l *lab) record(op Op) {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	l.mu.Unlock()
}

// settle waits, once the faults stopped, until the checker finds the
// catalogs and views converged, or bound passes, and returns what every
// live node held at the last look.
func (l *lab) settle(ctx context.Context, h History, bound time.Duration) []Final {
	deadline := h.FaultsEnd.Add(bound)
	var last []Final
	for {
		s := l.cl.observe(ctx, l.live(), true)
		last = s.finals
		if len(s.errs) == 0 {
			h.Finals = s.finals
			r := Check(h, CheckOptions{ConvergeBound: bound, NoCatchUp: true})
			if !slices.ContainsFunc(r.Violations, func(v Violation) bool {
				return v.Promise == PromiseCatalogConverged || v.Promise == PromiseViewConverged
			}) && s.oneView(l.expected(l.live())) {
				return last
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}
