package testutil

import (
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/wait"
)

// WaitFor polls cond every few milliseconds (with [wait.For]) until it
// holds, and fails the test naming what it waited for when timeout passes
// first. Tests wait for conditions this way, never with fixed sleeps.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if wait.For(timeout, 5*time.Millisecond, cond) != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
