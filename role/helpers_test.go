package role_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testState is a State whose writability flips at run time, as a
// manager's does when it becomes active or steps down.
type testState struct {
	role     role.Role
	writable atomic.Bool
	domain   string
	active   map[string]string
}

var (
	_ role.State          = (*testState)(nil)
	_ role.DomainReporter = (*testState)(nil)
	_ role.ActiveReporter = (*testState)(nil)
)

func newState(r role.Role, writable bool) *testState {
	s := &testState{role: r, domain: "test.domain", active: map[string]string{
		"grpc": "10.0.0.1:9443", "http": "10.0.0.1:8443",
	}}
	s.writable.Store(writable)
	return s
}

func (s *testState) Role() role.Role { return s.role }
func (s *testState) Writable() bool  { return s.writable.Load() }
func (s *testState) Domain() string  { return s.domain }
func (s *testState) ActiveEndpoint(name string) (string, bool) {
	a, ok := s.active[name]
	return a, ok
}

// server implements testpb.GuardServer and records the handlers that ran.
type server struct {
	testpb.UnimplementedGuardServer
	mu  sync.Mutex
	ran map[string]int
}

func (s *server) record(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ran == nil {
		s.ran = map[string]int{}
	}
	s.ran[m]++
}

func (s *server) count(m string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ran[m]
}

func (s *server) unary(m string, in *testpb.Item) (*testpb.Item, error) {
	s.record(m)
	return &testpb.Item{Key: in.GetKey(), Value: m}, nil
}

func (s *server) Get(_ context.Context, in *testpb.Item) (*testpb.Item, error) {
	return s.unary("Get", in)
}
func (s *server) Put(_ context.Context, in *testpb.Item) (*testpb.Item, error) {
	return s.unary("Put", in)
}
func (s *server) Delete(_ context.Context, in *testpb.Item) (*testpb.Item, error) {
	return s.unary("Delete", in)
}
func (s *server) Search(_ context.Context, in *testpb.Item) (*testpb.Item, error) {
	return s.unary("Search", in)
}

func (s *server) serverStream(m string, in *testpb.Item, st grpc.ServerStreamingServer[testpb.Item]) error {
	s.record(m)
	for i := 0; i < 3; i++ {
		if err := st.Send(&testpb.Item{Key: in.GetKey(), Value: m}); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) List(in *testpb.Item, st grpc.ServerStreamingServer[testpb.Item]) error {
	return s.serverStream("List", in, st)
}
func (s *server) Import(in *testpb.Item, st grpc.ServerStreamingServer[testpb.Item]) error {
	return s.serverStream("Import", in, st)
}

func (s *server) clientStream(m string, st grpc.ClientStreamingServer[testpb.Item, testpb.Item]) error {
	s.record(m)
	n := 0
	for {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&testpb.Item{Value: m, Key: string(rune('0' + n))})
		}
		if err != nil {
			return err
		}
		n++
	}
}

func (s *server) Sum(st grpc.ClientStreamingServer[testpb.Item, testpb.Item]) error {
	return s.clientStream("Sum", st)
}
func (s *server) Upload(st grpc.ClientStreamingServer[testpb.Item, testpb.Item]) error {
	return s.clientStream("Upload", st)
}

func (s *server) bidi(m string, st grpc.BidiStreamingServer[testpb.Item, testpb.Item]) error {
	s.record(m)
	for {
		in, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&testpb.Item{Key: in.GetKey(), Value: m}); err != nil {
			return err
		}
	}
}

func (s *server) Watch(st grpc.BidiStreamingServer[testpb.Item, testpb.Item]) error {
	return s.bidi("Watch", st)
}
func (s *server) Sync(st grpc.BidiStreamingServer[testpb.Item, testpb.Item]) error {
	return s.bidi("Sync", st)
}

// startServer serves the test service, health and reflection on
// 127.0.0.1, behind g's interceptors when g is not nil, and returns a
// connection to it. Both are closed when the test ends.
func startServer(t testing.TB, g *role.Guard) (*server, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if g != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(g.UnaryServerInterceptor()),
			grpc.ChainStreamInterceptor(g.StreamServerInterceptor()))
	}
	gs := grpc.NewServer(opts...)
	srv := &server{}
	testpb.RegisterGuardServer(gs, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		hs.Shutdown()
		gs.Stop()
		<-done
	})
	return srv, conn
}

// fakeMeterProvider records the Guard's counter. The fakes embed the noop
// implementations, so that new methods of the API don't break them.
type fakeMeterProvider struct {
	noop.MeterProvider
	c *fakeCounter
}

func (p fakeMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return fakeMeter{c: p.c}
}

type fakeMeter struct {
	noop.Meter
	c *fakeCounter
}

func (m fakeMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	m.c.mu.Lock()
	m.c.name = name
	m.c.mu.Unlock()
	return m.c, nil
}

type fakeCounter struct {
	noop.Int64Counter
	mu     sync.Mutex
	name   string
	counts map[string]int64 // "role method" -> sum
}

func (c *fakeCounter) Add(_ context.Context, n int64, opts ...metric.AddOption) {
	set := metric.NewAddConfig(opts).Attributes()
	r, _ := set.Value(attribute.Key("role"))
	m, _ := set.Value(attribute.Key("method"))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	c.counts[r.AsString()+" "+m.AsString()] += n
}

func (c *fakeCounter) get(k string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}
