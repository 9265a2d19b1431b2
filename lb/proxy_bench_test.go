package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

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
	benchProxy(b, direct, proxied)
}

// BenchmarkProxyTCP is BenchmarkProxy over TCP on 127.0.0.1, where each hop
// also costs the loopback's system calls, as a real deployment's would.
func BenchmarkProxyTCP(b *testing.B) {
	u := startUpstreamTCP(b, "worker")
	m := startUpstreamTCP(b, "manager")
	direct := testpb.NewGuardClient(dialTCP(b, u))
	p := NewProxy(dialTCP(b, u), dialTCP(b, m))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(p.ServerOptions()...)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	proxied := testpb.NewGuardClient(dialTCP(b, lis.Addr().String()))
	benchProxy(b, direct, proxied)
}

// startUpstreamTCP serves the test upstream on 127.0.0.1 and returns its
// address.
func startUpstreamTCP(b *testing.B, name string) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	u := &upstream{name: name, ended: make(chan error, 16), deadline: make(chan time.Time, 16)}
	u.srv = grpc.NewServer()
	testpb.RegisterGuardServer(u.srv, u)
	go func() { _ = u.srv.Serve(lis) }()
	b.Cleanup(u.srv.Stop)
	return lis.Addr().String()
}

func dialTCP(b *testing.B, addr string) *grpc.ClientConn {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return cc
}

// benchProxy runs the unary and stream sub-benchmarks against direct and
// proxied clients of the same upstream.
func benchProxy(b *testing.B, direct, proxied testpb.GuardClient) {
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

// BenchmarkProxyFloor measures the cheapest extra hop there can be on
// bufconn: a byte pipe that copies each connection's bytes to the upstream
// and back (io.Copy both ways), parsing nothing and routing nothing. Any
// proxy that routes per call must read at least its HTTP/2 frames, so its
// x_direct cannot be below this one's (docs/PERFORMANCE.md, "proxy",
// compares the two).
func BenchmarkProxyFloor(b *testing.B) {
	u := startUpstream(b, "worker", nil)
	direct := testpb.NewGuardClient(dialBufconn(b, u.lis))
	lis := bufconn.Listen(1 << 20)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := u.lis.Dial()
			if err != nil {
				c.Close()
				return
			}
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	b.Cleanup(func() { lis.Close() })
	benchProxy(b, direct, testpb.NewGuardClient(dialBufconn(b, lis)))
}
