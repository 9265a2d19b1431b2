package role_test

// Benchmarks of the Guard, all in one command:
//
//	go test -run=^$ -bench=. -benchmem -count=6 ./role | tee /tmp/role-bench.txt
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@latest /tmp/role-bench.txt)
//
// BenchmarkUnary/none and /guard make the same real gRPC call over bufconn
// without and with the Guard; /paired alternates the two in one loop, so
// that both see the same machine load, and reports their ratio as
// overhead-%.

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

// bufClient serves the test service over bufconn, behind g when g is not
// nil.
func bufClient(b *testing.B, g *role.Guard) testpb.GuardClient {
	return bufClientOpts(b, g)
}

func bufClientOpts(b *testing.B, g *role.Guard, opts ...grpc.ServerOption) testpb.GuardClient {
	b.Helper()
	lis := bufconn.Listen(1 << 20)
	if g != nil {
		opts = append(opts, grpc.UnaryInterceptor(g.UnaryServerInterceptor()),
			grpc.StreamInterceptor(g.StreamServerInterceptor()))
	}
	gs := grpc.NewServer(opts...)
	testpb.RegisterGuardServer(gs, &server{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		<-done
	})
	return testpb.NewGuardClient(conn)
}

func BenchmarkUnary(b *testing.B) {
	ctx := context.Background()
	in := &testpb.Item{Key: "k"}
	worker := role.NewGuard(role.Static(role.Worker))
	call := func(b *testing.B, c testpb.GuardClient) {
		if _, err := c.Get(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("none", func(b *testing.B) {
		c := bufClient(b, nil)
		call(b, c)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			call(b, c)
		}
	})
	// An interceptor that does nothing: what grpc-go itself costs once a
	// server has an interceptor (one allocation per call), for comparison.
	b.Run("noop-interceptor", func(b *testing.B) {
		c := bufClientOpts(b, nil, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}))
		call(b, c)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			call(b, c)
		}
	})
	b.Run("guard", func(b *testing.B) {
		c := bufClient(b, worker)
		call(b, c)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			call(b, c)
		}
	})
	b.Run("paired", func(b *testing.B) {
		none, guard := bufClient(b, nil), bufClient(b, worker)
		call(b, none)
		call(b, guard)
		var tNone, tGuard time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for b.Loop() {
			// Alternate which goes first so that neither always runs on
			// a warmer cache.
			first, second, tf, ts := none, guard, &tNone, &tGuard
			if n%2 == 1 {
				first, second, tf, ts = guard, none, &tGuard, &tNone
			}
			t0 := time.Now()
			call(b, first)
			t1 := time.Now()
			call(b, second)
			*tf += t1.Sub(t0)
			*ts += time.Since(t1)
			n++
		}
		b.ReportMetric(float64(tNone.Nanoseconds())/float64(n), "none-ns/call")
		b.ReportMetric(float64(tGuard.Nanoseconds())/float64(n), "guard-ns/call")
		b.ReportMetric(100*(float64(tGuard)/float64(tNone)-1), "overhead-%")
	})
}

// BenchmarkInterceptor measures the interceptors alone, on a worker.
func BenchmarkInterceptor(b *testing.B) {
	ctx := context.Background()
	worker := role.NewGuard(role.Static(role.Worker))
	active := role.NewGuard(role.Static(role.Manager))
	noop := func(context.Context, any) (any, error) { return nil, nil }
	snoop := func(any, grpc.ServerStream) error { return nil }
	read := &grpc.UnaryServerInfo{FullMethod: testpb.Guard_Get_FullMethodName}
	write := &grpc.UnaryServerInfo{FullMethod: testpb.Guard_Put_FullMethodName}
	wu, ws, au := worker.UnaryServerInterceptor(), worker.StreamServerInterceptor(), active.UnaryServerInterceptor()
	// With the writer rule (RequireWriterIdentity): reads cost what they
	// cost without it.
	ruled := role.NewGuard(role.Static(role.Manager), role.RequireWriterIdentity("d.test"))
	ru := ruled.UnaryServerInterceptor()
	sread := &grpc.StreamServerInfo{FullMethod: testpb.Guard_Watch_FullMethodName, IsClientStream: true, IsServerStream: true}
	for _, bc := range []struct {
		name string
		f    func()
	}{
		{"unary-read", func() { _, _ = wu(ctx, nil, read, noop) }},
		{"stream-read", func() { _ = ws(nil, nil, sread, snoop) }},
		{"unary-write-active", func() { _, _ = au(ctx, nil, write, noop) }},
		{"unary-write-rejected", func() { _, _ = wu(ctx, nil, write, noop) }},
		{"unary-read-active-writer-rule", func() { _, _ = ru(ctx, nil, read, noop) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.f()
			b.ReportAllocs()
			for b.Loop() {
				bc.f()
			}
		})
	}
}

// BenchmarkClassify measures the classifiers alone, warm.
func BenchmarkClassify(b *testing.B) {
	c := role.NewClassifier(classifierRules()...)
	b.Run("grpc", func(b *testing.B) {
		c.IsRead(testpb.Guard_Get_FullMethodName)
		b.ReportAllocs()
		for b.Loop() {
			c.IsRead(testpb.Guard_Get_FullMethodName)
		}
	})
	for _, bc := range []struct {
		name string
		r    *http.Request
	}{
		{"http", httptest.NewRequest(http.MethodGet, "/items?page=2", nil)},
		{"http-post", httptest.NewRequest(http.MethodPost, "/items", nil)},
		{"http-ruled-post", httptest.NewRequest(http.MethodPost, "/search", nil)},
		{"http-override", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/items?_method=HEAD", nil)
			r.Header.Set("X-HTTP-Method-Override", "GET")
			return r
		}()},
	} {
		// Typical browser headers, which the classifier walks.
		for k, v := range map[string]string{"Accept": "*/*", "User-Agent": "bench", "Accept-Encoding": "gzip", "Cookie": "a=b"} {
			bc.r.Header.Set(k, v)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.IsReadRequest(bc.r)
			}
		})
	}
}
