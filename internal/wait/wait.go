package wait

import (
	"context"
	"time"
)

// Until calls cond at once and then every interval until it returns true,
// and returns nil; when ctx ends first it calls cond a last time (a
// condition that came true at the deadline counts) and otherwise returns
// context.Cause(ctx). cond runs on the caller's goroutine.
func Until(ctx context.Context, interval time.Duration, cond func() bool) error {
	if cond() {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if cond() {
				return nil
			}
			return context.Cause(ctx)
		case <-t.C:
			if cond() {
				return nil
			}
		}
	}
}

// For is Until with a timeout instead of a context.
func For(timeout, interval time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Until(ctx, interval, cond)
}
