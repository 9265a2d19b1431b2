package lb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger() *slog.Logger {
	if os.Getenv("CARBON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// backend is a cluster member with a real gRPC server (testpb.Guard) and a
// real HTTP server on 127.0.0.1 that count the calls they serve.
type backend struct {
	testpb.UnimplementedGuardServer
	name  string
	node  *cluster.Node
	srv   *grpc.Server
	hsrv  *http.Server
	gaddr string
	haddr string
	calls atomic.Int64
	delay atomic.Int64 // ns per call
	fail  atomic.Bool  // answer Unavailable / 503
	wg    sync.WaitGroup
	once  sync.Once
}

func (b *backend) serve(ctx context.Context) error {
	b.calls.Add(1)
	if d := time.Duration(b.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.fail.Load() {
		return status.Error(codes.Unavailable, "test: failing")
	}
	return nil
}

func (b *backend) Get(ctx context.Context, in *testpb.Item) (*testpb.Item, error) {
	if err := b.serve(ctx); err != nil {
		return nil, err
	}
	return &testpb.Item{Key: in.GetKey(), Value: b.name}, nil
}

func (b *backend) Put(ctx context.Context, in *testpb.Item) (*testpb.Item, error) {
	if err := b.serve(ctx); err != nil {
		return nil, err
	}
	return &testpb.Item{Key: in.GetKey(), Value: b.name}, nil
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := b.serve(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, b.name)
}

type memberSpec struct {
	name     string
	role     role.Role
	observer bool
	seeds    []string
	props    map[string]string
	guard    bool // a role Guard on the gRPC server
	trust    *trust.Source
}

// startBackend starts the servers, then joins the node with their
// endpoints. Cleanup stops everything.
func startBackend(t testing.TB, domain string, spec memberSpec) *backend {
	t.Helper()
	b := &backend{name: spec.name}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.gaddr, b.haddr = gl.Addr().String(), hl.Addr().String()
	cfg := cluster.Config{
		Domain: domain, Role: spec.role, Observer: spec.observer, NodeName: spec.name,
		BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal, Seeds: spec.seeds,
		Endpoints:  map[string]string{"grpc": b.gaddr, "http": b.haddr},
		Properties: spec.props, Logger: testLogger(), Trust: spec.trust,
	}
	if spec.trust != nil {
		cfg.NodeName = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Join(ctx, cfg)
	if err != nil {
		t.Fatalf("Join(%s): %v", spec.name, err)
	}
	b.node = n
	var sopts []grpc.ServerOption
	if spec.guard {
		sopts = append(sopts, grpc.UnaryInterceptor(role.NewGuard(n).UnaryServerInterceptor()))
	}
	if spec.trust != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(trust.ServerTLSConfig(spec.trust, trust.AuthorizeDomain(domain)))))
	}
	b.srv = grpc.NewServer(sopts...)
	testpb.RegisterGuardServer(b.srv, b)
	b.hsrv = &http.Server{Handler: b}
	b.wg.Add(2)
	go func() { defer b.wg.Done(); _ = b.srv.Serve(gl) }()
	go func() { defer b.wg.Done(); _ = b.hsrv.Serve(hl) }()
	t.Cleanup(b.stop)
	return b
}

// stopServers stops the gRPC and HTTP servers (the node stays).
func (b *backend) stopServers() {
	b.once.Do(func() {
		b.srv.Stop()
		_ = b.hsrv.Close()
		b.wg.Wait()
	})
}

func (b *backend) stop() {
	b.stopServers()
	_ = b.node.Close()
}

// testCluster is count workers of sub-domain "worker" and an observer.
type testCluster struct {
	domain   string
	workers  []*backend
	observer *cluster.Node
}

var domainSeq atomic.Int64

func newDomain(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), domainSeq.Add(1))
}

func startWorkers(t testing.TB, count int) *testCluster {
	t.Helper()
	c := &testCluster{domain: newDomain("lbtest")}
	for i := range count {
		c.addWorker(t, fmt.Sprintf("w%d", i), nil)
	}
	c.observer = startObserver(t, c.domain, c.workers[0].node.Self().Addr)
	c.waitRoutable(t, c.observer, "worker", count)
	return c
}

func (c *testCluster) addWorker(t testing.TB, name string, props map[string]string) *backend {
	var seeds []string
	if len(c.workers) > 0 {
		seeds = []string{c.workers[0].node.Self().Addr}
	}
	b := startBackend(t, c.domain, memberSpec{name: name, role: role.Worker, seeds: seeds, props: props})
	c.workers = append(c.workers, b)
	return b
}

func startObserver(t testing.TB, domain, seed string) *cluster.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Join(ctx, cluster.Config{
		Domain: domain, Observer: true, NodeName: "observer", BindAddr: "127.0.0.1:0",
		Profile: cluster.ProfileLocal, Seeds: []string{seed}, Logger: testLogger(),
	})
	if err != nil {
		t.Fatalf("Join(observer): %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// routable counts the routable members of sub that n sees.
func routable(n *cluster.Node, sub string) int {
	c := 0
	for _, m := range n.View().Members() {
		if m.SubDomain == sub && m.Routable() {
			c++
		}
	}
	return c
}

func (c *testCluster) waitRoutable(t testing.TB, n *cluster.Node, sub string, want int) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%d routable members of %s", want, sub), func() bool { return routable(n, sub) == want })
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// counts returns the calls each backend served.
func counts(bs []*backend) map[string]int64 {
	m := map[string]int64{}
	for _, b := range bs {
		m[b.name] = b.calls.Load()
	}
	return m
}

func resetCounts(bs []*backend) {
	for _, b := range bs {
		b.calls.Store(0)
	}
}

// batch resets the workers' counts, makes calls calls through cc, par at
// a time, and returns how many each worker served.
func batch(t testing.TB, cc grpc.ClientConnInterface, workers []*backend, calls, par int) map[string]int64 {
	t.Helper()
	resetCounts(workers)
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() { get(t, cc, calls/par, nil) })
	}
	wg.Wait()
	return counts(workers)
}

// get calls Get n times, sequentially, each with a deadline.
func get(t testing.TB, cc grpc.ClientConnInterface, n int, ctxf func(i int) context.Context) {
	t.Helper()
	c := testpb.NewGuardClient(cc)
	for i := range n {
		ctx := context.Background()
		if ctxf != nil {
			ctx = ctxf(i)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Get(ctx, &testpb.Item{Key: fmt.Sprint(i)}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("Get #%d: %v", i, err)
		}
	}
}
