package lb

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/carbonkit/carbon/internal/testpb"
)

// BenchmarkProxy compares calls through the Proxy with the same calls made
// directly, in the same run, over bufconn: a unary Get, and a 1 MiB server
// stream (64 messages of 16 KiB). The interleaved sub-benchmarks alternate
// direct and proxied calls and report x_direct, the proxied time over the
// direct time (for the stream, the inverse of the throughput ratio); the
// direct and proxy ones report allocations and, for the stream, MB/s.
func BenchmarkProxy(b *testing.B) {
	u := startUpstream(b, "worker", nil)
	m := startUpstream(b, "manager", nil)
	direct := testpb.NewGuardClient(dialBufconn(b, u.lis))
	proxied := testpb.NewGuardClient(serveProxy(b, NewProxy(dialBufconn(b, u.lis), dialBufconn(b, m.lis))))
	ctx := context.Background()

	unary := func(c testpb.GuardClient) time.Duration {
		t0 := time.Now()
		if _, err := c.Get(ctx, &testpb.Item{Key: "k", Value: "v"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	stream := func(c testpb.GuardClient) time.Duration {
		t0 := time.Now()
		s, err := c.List(ctx, &testpb.Item{Key: "flood", Value: "64"})
		if err != nil {
			b.Fatal(err)
		}
		var msg testpb.Item
		for {
			if err := s.RecvMsg(&msg); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	for _, k := range []struct {
		name  string
		call  func(testpb.GuardClient) time.Duration
		bytes int64
	}{{"unary", unary, 0}, {"stream_1MiB", stream, 64 * floodMsg}} {
		b.Run(k.name+"/direct", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(k.bytes)
			for b.Loop() {
				k.call(direct)
			}
		})
		b.Run(k.name+"/proxy", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(k.bytes)
			for b.Loop() {
				k.call(proxied)
			}
		})
		b.Run(k.name+"/interleaved", func(b *testing.B) {
			var td, tp time.Duration
			odd := false // which goes first alternates
			for b.Loop() {
				if odd {
					tp += k.call(proxied)
					td += k.call(direct)
				} else {
					td += k.call(direct)
					tp += k.call(proxied)
				}
				odd = !odd
			}
			b.ReportMetric(float64(tp)/float64(td), "x_direct")
		})
	}
}

var _ grpc.ClientConnInterface = (*grpc.ClientConn)(nil)
