package role_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

type grpcCallOption = grpc.CallOption

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// call runs one complete call of method and returns its final error.
type call func(ctx context.Context, c testpb.GuardClient) error

func unaryCall(f func(testpb.GuardClient) func(context.Context, *testpb.Item, ...grpcCallOption) (*testpb.Item, error)) call {
	return func(ctx context.Context, c testpb.GuardClient) error {
		_, err := f(c)(ctx, &testpb.Item{Key: "k"})
		return err
	}
}

func serverStreamCall(ctx context.Context, open func(context.Context) (recvStream, error)) error {
	st, err := open(ctx)
	if err != nil {
		return err
	}
	n := 0
	for {
		if _, err := st.Recv(); errors.Is(err, io.EOF) {
			if n != 3 {
				return errors.New("short stream")
			}
			return nil
		} else if err != nil {
			return err
		}
		n++
	}
}

type recvStream interface{ Recv() (*testpb.Item, error) }

// calls holds one call per method of the test service, with whether the
// method is a read.
var calls = []struct {
	method string
	kind   string
	read   bool
	call   call
}{
	{"Get", "unary", true, unaryCall(func(c testpb.GuardClient) func(context.Context, *testpb.Item, ...grpcCallOption) (*testpb.Item, error) {
		return c.Get
	})},
	{"Put", "unary", false, unaryCall(func(c testpb.GuardClient) func(context.Context, *testpb.Item, ...grpcCallOption) (*testpb.Item, error) {
		return c.Put
	})},
	{"Delete", "unary", false, unaryCall(func(c testpb.GuardClient) func(context.Context, *testpb.Item, ...grpcCallOption) (*testpb.Item, error) {
		return c.Delete
	})},
	{"Search", "unary", true, unaryCall(func(c testpb.GuardClient) func(context.Context, *testpb.Item, ...grpcCallOption) (*testpb.Item, error) {
		return c.Search
	})},
	{"List", "server-stream", true, func(ctx context.Context, c testpb.GuardClient) error {
		return serverStreamCall(ctx, func(ctx context.Context) (recvStream, error) { return c.List(ctx, &testpb.Item{}) })
	}},
	{"Import", "server-stream", false, func(ctx context.Context, c testpb.GuardClient) error {
		return serverStreamCall(ctx, func(ctx context.Context) (recvStream, error) { return c.Import(ctx, &testpb.Item{}) })
	}},
	{"Sum", "client-stream", true, func(ctx context.Context, c testpb.GuardClient) error {
		st, err := c.Sum(ctx)
		if err != nil {
			return err
		}
		return clientStream(st)
	}},
	{"Upload", "client-stream", false, func(ctx context.Context, c testpb.GuardClient) error {
		st, err := c.Upload(ctx)
		if err != nil {
			return err
		}
		return clientStream(st)
	}},
	{"Watch", "bidi", true, func(ctx context.Context, c testpb.GuardClient) error {
		st, err := c.Watch(ctx)
		if err != nil {
			return err
		}
		return bidi(st)
	}},
	{"Sync", "bidi", false, func(ctx context.Context, c testpb.GuardClient) error {
		st, err := c.Sync(ctx)
		if err != nil {
			return err
		}
		return bidi(st)
	}},
}

type clientStreamClient interface {
	Send(*testpb.Item) error
	CloseAndRecv() (*testpb.Item, error)
}

func clientStream(st clientStreamClient) error {
	for i := 0; i < 2; i++ {
		// A Send error (io.EOF) means the server ended the call; its
		// status comes from CloseAndRecv.
		if err := st.Send(&testpb.Item{Key: "k"}); err != nil {
			break
		}
	}
	resp, err := st.CloseAndRecv()
	if err == nil && resp.GetKey() != "2" {
		return errors.New("server counted " + resp.GetKey() + " messages, want 2")
	}
	return err
}

type bidiClient interface {
	Send(*testpb.Item) error
	Recv() (*testpb.Item, error)
	CloseSend() error
}

func bidi(st bidiClient) error {
	if err := st.Send(&testpb.Item{Key: "k"}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if _, err := st.Recv(); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// checkRejected fails t unless err is the Guard's rejection of a write by
// a node of role r; it returns the ErrorInfo metadata.
func checkRejected(t *testing.T, err error, r role.Role) map[string]string {
	t.Helper()
	if err == nil {
		t.Fatal("write succeeded on a read-only node")
	}
	if !role.IsReadOnly(err) {
		t.Errorf("IsReadOnly(%v) = false", err)
	}
	s := status.Convert(err)
	if s.Code() != codes.FailedPrecondition {
		t.Fatalf("code = %v, want FailedPrecondition (%v)", s.Code(), err)
	}
	if !strings.HasPrefix(s.Message(), "role: ") {
		t.Errorf("message %q does not start with %q", s.Message(), "role: ")
	}
	var info *errdetails.ErrorInfo
	for _, d := range s.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil {
		t.Fatalf("no ErrorInfo in %v", s.Details())
	}
	if info.GetReason() != "READ_ONLY_NODE" || info.GetDomain() != role.ErrorDomain {
		t.Errorf("ErrorInfo reason, domain = %q, %q", info.GetReason(), info.GetDomain())
	}
	md := info.GetMetadata()
	if md["domain"] != "test.domain" || md["role"] != r.String() {
		t.Errorf("ErrorInfo metadata = %v, want domain test.domain and role %s", md, r)
	}
	return md
}

// TestGRPCGuard makes every kind of call, read and write, to a worker, a
// passive manager and an active manager over a real loopback server.
func TestGRPCGuard(t *testing.T) {
	for _, tc := range []struct {
		name     string
		role     role.Role
		writable bool
	}{
		{"worker", role.Worker, false},
		{"worker claiming writable", role.Worker, true}, // a worker never writes
		{"observer", role.None, true},
		{"passive manager", role.Manager, false},
		{"active manager", role.Manager, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newState(tc.role, tc.writable)
			g := role.NewGuard(st, role.WithReadMethods("/carbon.test.v1.Guard/Search"))
			srv, conn := startServer(t, g)
			c := testpb.NewGuardClient(conn)
			writable := tc.role == role.Manager && tc.writable
			for _, k := range calls {
				t.Run(k.method+"/"+k.kind, func(t *testing.T) {
					err := k.call(testCtx(t), c)
					if k.read || writable {
						if err != nil {
							t.Fatalf("%s: %v", k.method, err)
						}
						if srv.count(k.method) != 1 {
							t.Errorf("handler ran %d times, want 1", srv.count(k.method))
						}
						return
					}
					md := checkRejected(t, err, tc.role)
					if _, ok := md["active"]; ok {
						t.Errorf("active manager disclosed without WithActiveDisclosure: %v", md)
					}
					if n := srv.count(k.method); n != 0 {
						t.Errorf("write handler ran %d times on a read-only node", n)
					}
				})
			}
		})
	}
}

func TestGRPCActiveDisclosure(t *testing.T) {
	st := newState(role.Worker, false)
	_, conn := startServer(t, role.NewGuard(st, role.WithActiveDisclosure("grpc")))
	_, err := testpb.NewGuardClient(conn).Put(testCtx(t), &testpb.Item{})
	md := checkRejected(t, err, role.Worker)
	if md["active"] != "10.0.0.1:9443" {
		t.Errorf("active = %q, want 10.0.0.1:9443", md["active"])
	}
	e, ok := role.AsReadOnly(err)
	if !ok || e.Active != "10.0.0.1:9443" || e.Role != role.Worker || e.Domain != "test.domain" {
		t.Errorf("AsReadOnly = %+v, %v", e, ok)
	}

	// Disclosure of an endpoint the State does not know sends nothing.
	_, conn = startServer(t, role.NewGuard(st, role.WithActiveDisclosure("admin")))
	_, err = testpb.NewGuardClient(conn).Put(testCtx(t), &testpb.Item{})
	if md := checkRejected(t, err, role.Worker); md["active"] != "" {
		t.Errorf("active = %q for an unknown endpoint", md["active"])
	}
}

// TestGRPCStateChange flips a manager between passive and active while the
// server runs: between calls, and during open streams.
func TestGRPCStateChange(t *testing.T) {
	st := newState(role.Manager, false)
	srv, conn := startServer(t, role.NewGuard(st))
	c := testpb.NewGuardClient(conn)
	ctx := testCtx(t)

	_, err := c.Put(ctx, &testpb.Item{})
	checkRejected(t, err, role.Manager)
	st.writable.Store(true) // becomes active: no restart
	if _, err := c.Put(ctx, &testpb.Item{}); err != nil {
		t.Fatalf("Put on the active manager: %v", err)
	}
	st.writable.Store(false) // steps down
	_, err = c.Put(ctx, &testpb.Item{})
	checkRejected(t, err, role.Manager)
	if n := srv.count("Put"); n != 1 {
		t.Errorf("Put ran %d times, want 1", n)
	}

	// A write stream opened while active is cut at its first message
	// after the manager steps down; a read stream goes on.
	st.writable.Store(true)
	sync, err := c.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []bidiClient{sync, watch} {
		if err := s.Send(&testpb.Item{Key: "1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("while active: %v", err)
		}
	}
	st.writable.Store(false)
	for _, s := range []bidiClient{sync, watch} {
		_ = s.Send(&testpb.Item{Key: "2"}) // io.EOF if the server ended the stream
	}
	_, err = sync.Recv()
	checkRejected(t, err, role.Manager)
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("read stream cut by the step-down: %v", err)
	}
	if err := watch.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("watch end: %v", err)
	}

	// And the other way: a passive manager that becomes active accepts a
	// new write stream.
	st.writable.Store(true)
	if err := bidi(mustSync(t, c, ctx)); err != nil {
		t.Fatalf("Sync while passive: %v", err)
	}
}

func mustSync(t *testing.T, c testpb.GuardClient, ctx context.Context) bidiClient {
	t.Helper()
	st, err := c.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestGRPCBuiltinReads calls health and reflection on a worker.
func TestGRPCBuiltinReads(t *testing.T) {
	_, conn := startServer(t, role.NewGuard(role.Static(role.Worker)))
	ctx := testCtx(t)
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health on a worker: %v, %v", resp, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	r, err := rc.Recv()
	if err != nil {
		t.Fatalf("reflection on a worker: %v", err)
	}
	found := false
	for _, s := range r.GetListServicesResponse().GetService() {
		found = found || s.GetName() == "carbon.test.v1.Guard"
	}
	if !found {
		t.Errorf("reflection lists %v", r.GetListServicesResponse().GetService())
	}
	if err := rc.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("reflection end: %v", err)
	}
}

func TestCheckWrite(t *testing.T) {
	st := newState(role.Worker, false)
	err := role.NewGuard(st).CheckWrite(context.Background())
	if !errors.Is(err, role.ErrReadOnly) || !role.IsReadOnly(err) {
		t.Fatalf("CheckWrite on a worker = %v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "role: ") || !strings.Contains(msg, "worker") || !strings.Contains(msg, `"test.domain"`) {
		t.Errorf("CheckWrite message %q does not name role and domain", msg)
	}
	m := newState(role.Manager, true)
	g := role.NewGuard(m)
	if err := g.CheckWrite(context.Background()); err != nil {
		t.Fatalf("CheckWrite on the active manager: %v", err)
	}
	m.writable.Store(false)
	if err := g.CheckWrite(context.Background()); !errors.Is(err, role.ErrReadOnly) {
		t.Fatalf("CheckWrite on a passive manager = %v", err)
	}
	// Returned from a handler, it is the Guard's status.
	if s := status.Convert(err); s.Code() != codes.FailedPrecondition || !role.IsReadOnly(s.Err()) {
		t.Errorf("status of CheckWrite's error = %v", s)
	}
}

func TestIsReadOnly(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{role.ErrReadOnly, true},
		{status.Error(codes.FailedPrecondition, "role: read-only node"), false}, // no ErrorInfo
		{status.Error(codes.Unavailable, "x"), false},
		{(&role.ReadOnlyError{Role: role.Worker}).GRPCStatus().Err(), true},
	} {
		if got := role.IsReadOnly(tc.err); got != tc.want {
			t.Errorf("IsReadOnly(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	s, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{Reason: "READ_ONLY_NODE", Domain: "other.example"})
	if role.IsReadOnly(s.Err()) {
		t.Error("IsReadOnly true for another domain's READ_ONLY_NODE")
	}
}

func TestGuardMetrics(t *testing.T) {
	fc := &fakeCounter{}
	g := role.NewGuard(newState(role.Worker, false), role.WithMeterProvider(fakeMeterProvider{c: fc}))
	_, conn := startServer(t, g)
	c := testpb.NewGuardClient(conn)
	ctx := testCtx(t)
	for i := 0; i < 2; i++ {
		_, _ = c.Put(ctx, &testpb.Item{})
		_, _ = c.Get(ctx, &testpb.Item{})
	}
	_ = g.CheckWrite(ctx)
	if fc.name != role.MetricRejected {
		t.Errorf("counter name %q", fc.name)
	}
	for k, want := range map[string]int64{
		"worker /carbon.test.v1.Guard/Put": 2,
		"worker /carbon.test.v1.Guard/Get": 0,
		"worker in-process":                1,
	} {
		if got := fc.get(k); got != want {
			t.Errorf("count[%s] = %d, want %d", k, got, want)
		}
	}
}
