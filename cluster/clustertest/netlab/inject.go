//go:build linux

package netlab

import (
	"context"
	"fmt"
	"time"
)

// activeNow is the manager that answers as writable, or "".
func (l *lab) activeNow(ctx context.Context) string {
	s := l.cl.observe(ctx, l.live(), false)
	for _, f := range s.finals {
		if f.Writable {
			return f.Node
		}
	}
	return ""
}

// inject applies one fault for its duration, undoes it, and waits for the
// cluster to recover: one view again, and a write acknowledged.
func (l *lab) inject(ctx context.Context, f Fault) (FaultRecord, error) {
	active := l.activeNow(ctx)
	if f.Target == ActiveTarget {
		f.Target = active
		if f.Target == "" {
			f.Target = l.managers[0]
		}
	}
	rec := FaultRecord{Fault: f, WasActive: f.Target != "" && f.Target == active}
	var undo func() error
	rec.Start = time.Now()
	switch f.Kind {
	case FaultKill:
		p := l.procs[f.Target]
		if err := p.Kill(); err != nil {
			return rec, err
		}
		undo = func() error { return l.start(f.Target) }
	case FaultPause:
		p := l.procs[f.Target]
		if err := p.Pause(); err != nil {
			return rec, err
		}
		undo = p.Resume
	case FaultIsolate:
		if err := l.net.SetLink(ctx, f.Target, false); err != nil {
			return rec, err
		}
		undo = func() error { return l.net.SetLink(ctx, f.Target, true) }
	case FaultCut:
		if err := l.net.Cut(ctx, f.From, f.To); err != nil {
			return rec, err
		}
		undo = func() error { return l.net.Uncut(ctx, f.From, f.To) }
	case FaultPartition:
		if err := l.net.Partition(ctx, f.Groups...); err != nil {
			return rec, err
		}
		undo = func() error { return l.net.Heal(ctx) }
	default:
		return rec, fmt.Errorf("netlab: unknown fault kind %q", f.Kind)
	}
	// The fault's duration is the scripted part of the schedule, not a
	// wait for a condition.
	sleepCtx(ctx, f.Duration)
	if err := undo(); err != nil {
		return rec, err
	}
	rec.End = time.Now()
	at, ok := l.waitOneView(ctx, rec.End, l.o.RecoverBound)
	rec.ViewAfter = -1
	if ok {
		rec.ViewAfter = at.Sub(rec.End)
		if f.Kind == FaultKill {
			// A restarted node counts as started once it is back in the
			// view: only then can it receive the catalog's broadcasts.
			l.mu.Lock()
			l.starts[f.Target][len(l.starts[f.Target])-1] = at
			l.mu.Unlock()
		}
	}
	rec.Recovered = -1
	deadline := time.Now().Add(l.o.RecoverBound)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if t, ok := l.firstAck(rec.Start); ok {
			rec.Recovered = t.Sub(rec.Start)
			break
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	return rec, nil
}

// firstAck is when the first write invoked after t was acknowledged.
func (l *lab) firstAck(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, op := range l.ops {
		if op.Kind == OpWrite && op.Result == OK && !op.Invoke.Before(t) && (first.IsZero() || op.Complete.Before(first)) {
			first = op.Complete
		}
	}
	return first, !first.IsZero()
}
