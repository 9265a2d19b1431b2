package wait

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestUntilHolds: Until returns nil once cond holds, having polled it
// every interval (on the bubble's clock: exact counts).
func TestUntilHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		start := time.Now()
		err := For(time.Minute, 10*time.Millisecond, func() bool { calls++; return calls == 5 })
		if err != nil {
			t.Fatalf("For: %v", err)
		}
		if got := time.Since(start); got != 40*time.Millisecond {
			t.Errorf("took %v, want 40ms (4 intervals)", got)
		}
	})
}

// TestUntilTimesOut: when cond never holds, the error is the context's
// cause, after the deadline, with one last look at cond.
func TestUntilTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("gave up")
		ctx, cancel := context.WithTimeoutCause(context.Background(), 95*time.Millisecond, cause)
		defer cancel()
		calls := 0
		start := time.Now()
		err := Until(ctx, 10*time.Millisecond, func() bool { calls++; return false })
		if !errors.Is(err, cause) {
			t.Fatalf("err = %v, want %v", err, cause)
		}
		if got := time.Since(start); got != 95*time.Millisecond {
			t.Errorf("gave up after %v, want 95ms", got)
		}
		if calls != 11 { // at once, 9 ticks, and the last look
			t.Errorf("cond called %d times, want 11", calls)
		}
	})
}

// TestUntilLastLook: a condition that comes true at the deadline counts.
func TestUntilLastLook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Millisecond)
		defer cancel()
		err := Until(ctx, time.Hour, func() bool { return ctx.Err() != nil })
		if err != nil {
			t.Fatalf("Until: %v, want nil (cond held at the deadline)", err)
		}
	})
}
