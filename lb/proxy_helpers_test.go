package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

// upstream is a Guard test service behind a real grpc.Server on a bufconn
// listener. Every method echoes, with the request's "x-req" metadata sent
// back as header "x-echo" and a trailer "x-trail" naming the upstream. A
// key drives the rest:
//
//	"fail"   an error with details (ErrorInfo) and a trailer
//	"flaky"  (unary, server streams) Unavailable, with no headers, on the upstream's first
//	         flaky call, then success
//	"block"  wait for the call's context to end and record its error
//	"flood"  (List) send value × 16 KiB messages, counting them
//	"n=<k>"  (List, Import) send k items
type upstream struct {
	testpb.UnimplementedGuardServer
	name  string
	lis   *bufconn.Listener
	srv   *grpc.Server
	calls sync.Map // method -> *atomic.Int64

	flooded  atomic.Int64 // bytes of "flood" messages sent
	flaky    atomic.Int64 // "flaky" calls so far
	ended    chan error   // "block": the context's error when it ended
	deadline chan time.Time
}

const floodMsg = 16 << 10

func startUpstream(t testing.TB, name string, g *role.Guard) *upstream {
	t.Helper()
	u := &upstream{name: name, lis: bufconn.Listen(1 << 20), ended: make(chan error, 16), deadline: make(chan time.Time, 16)}
	var opts []grpc.ServerOption
	if g != nil {
		opts = append(opts, grpc.UnaryInterceptor(g.UnaryServerInterceptor()), grpc.StreamInterceptor(g.StreamServerInterceptor()))
	}
	u.srv = grpc.NewServer(opts...)
	testpb.RegisterGuardServer(u.srv, u)
	go func() { _ = u.srv.Serve(u.lis) }()
	t.Cleanup(u.srv.Stop)
	return u
}

func (u *upstream) count(method string) int64 {
	v, ok := u.calls.Load(method)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func (u *upstream) called(method string) {
	v, _ := u.calls.LoadOrStore(method, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// total counts every call the upstream's handlers ran.
func (u *upstream) total() int64 {
	var n int64
	u.calls.Range(func(_, v any) bool { n += v.(*atomic.Int64).Load(); return true })
	return n
}

func dialBufconn(t testing.TB, lis *bufconn.Listener, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}, opts...)
	cc, err := grpc.NewClient("passthrough:///bufconn", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// serveProxy serves p on a bufconn listener and returns a client of it.
func serveProxy(t testing.TB, p *Proxy, extra ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(append(p.ServerOptions(), extra...)...)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return dialBufconn(t, lis)
}

// begin runs the parts every method shares: count the call, record the
// deadline, echo the metadata as a header, set the trailer.
func (u *upstream) begin(ctx context.Context, method string, setHeader func(metadata.MD) error, setTrailer func(metadata.MD)) {
	u.called(method)
	if d, ok := ctx.Deadline(); ok {
		select {
		case u.deadline <- d:
		default:
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	_ = setHeader(metadata.Pairs("x-echo", join(md["x-req"]), "x-served-by", u.name))
	setTrailer(metadata.Pairs("x-trail", u.name+"/"+method))
}

func join(v []string) string {
	out := ""
	for i, s := range v {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// outcome is what the key asks for, after the common part.
func (u *upstream) outcome(ctx context.Context, key string) error {
	switch key {
	case "fail":
		st, _ := status.New(codes.Aborted, "upstream says no").WithDetails(&errdetails.ErrorInfo{Reason: "TEST_FAILURE", Domain: "test", Metadata: map[string]string{"by": u.name}})
		return st.Err()
	case "block":
		<-ctx.Done()
		u.ended <- ctx.Err()
		return ctx.Err()
	}
	return nil
}

func (u *upstream) unary(ctx context.Context, method string, in *testpb.Item) (*testpb.Item, error) {
	if in.Key == "flaky" && u.flaky.Add(1) == 1 {
		u.called(method)
		// Before any header, as a handler that fails at once does.
		return nil, status.Error(codes.Unavailable, "upstream unavailable, once")
	}
	u.begin(ctx, method, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
	if err := u.outcome(ctx, in.Key); err != nil {
		return nil, err
	}
	return &testpb.Item{Key: in.Key, Value: u.name + ":" + in.Value}, nil
}

func (u *upstream) Get(ctx context.Context, in *testpb.Item) (*testpb.Item, error) {
	return u.unary(ctx, "Get", in)
}
func (u *upstream) Put(ctx context.Context, in *testpb.Item) (*testpb.Item, error) {
	return u.unary(ctx, "Put", in)
}
func (u *upstream) Search(ctx context.Context, in *testpb.Item) (*testpb.Item, error) {
	return u.unary(ctx, "Search", in)
}

func (u *upstream) serverStream(method string, in *testpb.Item, s grpc.ServerStreamingServer[testpb.Item]) error {
	if in.Key == "flaky" && u.flaky.Add(1) == 1 {
		u.called(method)
		return status.Error(codes.Unavailable, "upstream unavailable, once")
	}
	u.begin(s.Context(), method, s.SetHeader, s.SetTrailer)
	if in.Key == "flood" {
		n, _ := strconv.Atoi(in.Value)
		big := &testpb.Item{Key: "flood", Value: string(make([]byte, floodMsg))}
		for range n {
			if err := s.Send(big); err != nil {
				return err
			}
			u.flooded.Add(floodMsg)
		}
		return nil
	}
	n := 3
	if k, ok := cutPrefix(in.Key, "n="); ok {
		n, _ = strconv.Atoi(k)
	}
	if in.Key == "fail" {
		n = 1 // one item, then the error
	}
	for i := range n {
		if err := s.Send(&testpb.Item{Key: strconv.Itoa(i), Value: u.name + ":" + in.Value}); err != nil {
			return err
		}
	}
	return u.outcome(s.Context(), in.Key)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

func (u *upstream) List(in *testpb.Item, s grpc.ServerStreamingServer[testpb.Item]) error {
	return u.serverStream("List", in, s)
}
func (u *upstream) Import(in *testpb.Item, s grpc.ServerStreamingServer[testpb.Item]) error {
	return u.serverStream("Import", in, s)
}

func (u *upstream) clientStream(method string, s grpc.ClientStreamingServer[testpb.Item, testpb.Item]) error {
	u.begin(s.Context(), method, s.SetHeader, s.SetTrailer)
	sum := ""
	key := ""
	for {
		in, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		sum += in.Value
		key = in.Key
	}
	if err := u.outcome(s.Context(), key); err != nil {
		return err
	}
	return s.SendAndClose(&testpb.Item{Key: key, Value: u.name + ":" + sum})
}

func (u *upstream) Sum(s grpc.ClientStreamingServer[testpb.Item, testpb.Item]) error {
	return u.clientStream("Sum", s)
}
func (u *upstream) Upload(s grpc.ClientStreamingServer[testpb.Item, testpb.Item]) error {
	return u.clientStream("Upload", s)
}

func (u *upstream) bidi(method string, s grpc.BidiStreamingServer[testpb.Item, testpb.Item]) error {
	u.begin(s.Context(), method, s.SetHeader, s.SetTrailer)
	for {
		in, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := u.outcome(s.Context(), in.Key); err != nil {
			return err
		}
		if err := s.Send(&testpb.Item{Key: in.Key, Value: u.name + ":" + in.Value}); err != nil {
			return err
		}
	}
}

func (u *upstream) Watch(s grpc.BidiStreamingServer[testpb.Item, testpb.Item]) error {
	return u.bidi("Watch", s)
}
func (u *upstream) Sync(s grpc.BidiStreamingServer[testpb.Item, testpb.Item]) error {
	return u.bidi("Sync", s)
}
