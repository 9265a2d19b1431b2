package lb

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/internal/testutil"
)

// TestProxyCallsBeyondItsWorkers holds more calls open through the proxy
// than its server has stream workers (ServerOptions): every one must reach
// the upstream at once, since a call that finds the workers busy gets its
// own goroutine. A pool that queued calls instead would hold the extra
// ones back until a blocked call ended, and never here.
func TestProxyCallsBeyondItsWorkers(t *testing.T) {
	r := newProxyRig(t)
	c := testpb.NewGuardClient(r.proxy)
	n := 4*runtime.GOMAXPROCS(0) + 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, n)
	for range n {
		go func() { _, err := c.Get(ctx, &testpb.Item{Key: "block"}); done <- err }()
	}
	// The upstream's "block" handlers report on r.worker.ended, which holds
	// 16: read it as they end so that none of them blocks.
	ended := make(chan error, n)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range n {
			select {
			case err := <-r.worker.ended:
				ended <- err
			case <-stop:
				return
			}
		}
	}()
	testutil.WaitFor(t, 10*time.Second, "every blocked call to reach the upstream", func() bool { return r.worker.count("Get") == int64(n) })
	cancel()
	for range n {
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("an upstream call ended with %v, want Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an upstream call was not cancelled")
		}
		if err := <-done; status.Code(err) != codes.Canceled {
			t.Fatalf("client: %v", err)
		}
	}
}
