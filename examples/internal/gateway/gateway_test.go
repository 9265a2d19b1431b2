package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/lb"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var domainSeq atomic.Int64

func newDomain() string { return fmt.Sprintf("gwtest-%d-%d", os.Getpid(), domainSeq.Add(1)) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// member joins domain with the given endpoints.
func member(t *testing.T, domain, name string, r role.Role, observer bool, seeds []string, endpoints map[string]string) *cluster.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Join(ctx, cluster.Config{
		Domain: domain, NodeName: name, Role: r, Observer: observer, Seeds: seeds,
		BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal, Endpoints: endpoints, Logger: quiet(),
	})
	if err != nil {
		t.Fatalf("Join(%s): %v", name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// frozen is an upstream that accepts connections and reads them, but
// never answers: a paused process, as SIGSTOP makes one.
func frozen(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// standby is a manager's servers as a stand-by runs them: its role Guard
// refuses every write (Writable false).
type standbyState struct{}

func (standbyState) Role() role.Role { return role.Manager }
func (standbyState) Writable() bool  { return false }

type catalog struct {
	pb.UnimplementedCatalogServer
	name string
}

func (c catalog) ListArtifacts(context.Context, *pb.ListArtifactsRequest) (*pb.ListArtifactsResponse, error) {
	return &pb.ListArtifactsResponse{}, nil
}

// serve runs a Catalog behind g's interceptors and an HTTP handler behind
// g's middleware, and returns their endpoints.
func serve(t *testing.T, name string, g *role.Guard) map[string]string {
	t.Helper()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(g.UnaryServerInterceptor()), grpc.StreamInterceptor(g.StreamServerInterceptor()))
	pb.RegisterCatalogServer(srv, catalog{name: name})
	hs := &http.Server{Handler: g.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	}))}
	go func() { _ = srv.Serve(gl) }()
	go func() { _ = hs.Serve(hl) }()
	t.Cleanup(func() { srv.Stop(); hs.Close() })
	return map[string]string{"grpc": gl.Addr().String(), "http": hl.Addr().String()}
}

func waitRoutable(t *testing.T, n *cluster.Node, sub string, want int) {
	t.Helper()
	testutil.WaitFor(t, 15*time.Second, fmt.Sprintf("%d routable members of %s", want, sub), func() bool {
		c := 0
		for _, m := range n.View().Members() {
			if m.SubDomain == sub && m.Routable() {
				c++
			}
		}
		return c == want
	})
}

func start(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	cfg.Logger = quiet()
	g, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// wantUnavailable checks a gRPC error is Unavailable with a RetryInfo.
func wantUnavailable(t *testing.T, what string, err error) *status.Status {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("%s: %v, want Unavailable", what, err)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			return st
		}
	}
	t.Fatalf("%s: %v has no RetryInfo (details %v)", what, err, st.Details())
	return nil
}

// want503 checks an HTTP answer is 503 with a Retry-After.
func want503(t *testing.T, what string, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d (Retry-After %q) %s, want 503 with Retry-After", what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	return string(body)
}

func TestFrozenUpstreamGetsUnavailableWithinTheDeadline(t *testing.T) {
	domain := newDomain()
	w := member(t, domain, "w1", role.Worker, false, nil, map[string]string{"grpc": frozen(t), "http": frozen(t)})
	obs := member(t, domain, "gw", "", true, []string{w.Self().Addr}, nil)
	waitRoutable(t, obs, cluster.SubDomainWorker, 1)
	const timeout = 300 * time.Millisecond
	g := start(t, Config{Reads: Route{Node: obs, SubDomain: cluster.SubDomainWorker}, UpstreamTimeout: timeout})

	// The client allows far longer than the gateway's upstream timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	_, err := pb.NewCatalogClient(dial(t, g.GRPCAddr())).ListArtifacts(ctx, &pb.ListArtifactsRequest{})
	took := time.Since(t0)
	st := wantUnavailable(t, "gRPC read to a frozen worker", err)
	if took < timeout || took > timeout+3*time.Second {
		t.Fatalf("answered after %v, want about the upstream timeout %v", took, timeout)
	}
	if !strings.Contains(st.Message(), "did not answer") {
		t.Fatalf("message %q does not say why", st.Message())
	}

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+g.HTTPAddr()+"/artifacts", nil)
		t0 = time.Now()
		resp, err := http.DefaultClient.Do(req)
		took = time.Since(t0)
		body := want503(t, "HTTP "+method+" to a frozen worker", resp, err)
		if took < timeout || took > timeout+3*time.Second {
			t.Fatalf("HTTP %s answered after %v, want about the upstream timeout %v", method, took, timeout)
		}
		if !strings.Contains(body, "did not answer") {
			t.Fatalf("HTTP %s body %q does not say why", method, body)
		}
	}
}

func TestStandbyOnlyManagersGive503(t *testing.T) {
	domain := newDomain()
	w := member(t, domain, "w1", role.Worker, false, nil, serve(t, "w1", role.NewGuard(role.Static(role.Worker))))
	seeds := []string{w.Self().Addr}
	member(t, domain, "m1", role.Manager, false, seeds, serve(t, "m1", role.NewGuard(standbyState{})))
	obs := member(t, domain, "gw", "", true, seeds, nil)
	waitRoutable(t, obs, cluster.SubDomainWorker, 1)
	waitRoutable(t, obs, cluster.SubDomainManager, 1)
	g := start(t, Config{
		Reads:  Route{Node: obs, SubDomain: cluster.SubDomainWorker},
		Writes: &Route{Node: obs, SubDomain: cluster.SubDomainManager, Policy: lb.ActiveFirst},
	})
	c := pb.NewCatalogClient(dial(t, g.GRPCAddr()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Reads still work: they go to the worker.
	if _, err := c.ListArtifacts(ctx, &pb.ListArtifactsRequest{}); err != nil {
		t.Fatalf("read: %v", err)
	}
	_, err := c.DeployArtifact(ctx, &pb.DeployArtifactRequest{})
	st := wantUnavailable(t, "gRPC write with only a stand-by manager", err)
	if !strings.Contains(st.Message(), "no writable manager") || !strings.Contains(fmt.Sprint(st.Details()), role.ReasonReadOnly) {
		t.Fatalf("write: %q %v: want the reason and the stand-by's ErrorInfo", st.Message(), st.Details())
	}
	resp, err := http.Post("http://"+g.HTTPAddr()+"/artifacts", "application/json", strings.NewReader("{}"))
	if body := want503(t, "HTTP write with only a stand-by manager", resp, err); !strings.Contains(body, "no writable manager") {
		t.Fatalf("HTTP write: %q", body)
	}
	resp, err = http.Get("http://" + g.HTTPAddr() + "/artifacts")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP read: %v %v", resp, err)
	}
	resp.Body.Close()

	// No manager at all: the same answer.
	g2 := start(t, Config{
		Reads:  Route{Node: obs, SubDomain: cluster.SubDomainWorker},
		Writes: &Route{Node: obs, SubDomain: "nobody", Policy: lb.ActiveFirst},
	})
	_, err = pb.NewCatalogClient(dial(t, g2.GRPCAddr())).DeployArtifact(ctx, &pb.DeployArtifactRequest{})
	wantUnavailable(t, "gRPC write with no manager", err)
	resp, err = http.Post("http://"+g2.HTTPAddr()+"/artifacts", "application/json", strings.NewReader("{}"))
	want503(t, "HTTP write with no manager", resp, err)
}

func TestWorkerRefusalStays403InFrontOfWorkers(t *testing.T) {
	// In front of the workers only, a write refused as read-only is the
	// client's mistake, not a fail-over: it stays as the Guard sent it.
	domain := newDomain()
	w := member(t, domain, "w1", role.Worker, false, nil, serve(t, "w1", role.NewGuard(role.Static(role.Worker))))
	obs := member(t, domain, "gw", "", true, []string{w.Self().Addr}, nil)
	waitRoutable(t, obs, cluster.SubDomainWorker, 1)
	g := start(t, Config{Reads: Route{Node: obs, SubDomain: cluster.SubDomainWorker}})
	_, err := pb.NewCatalogClient(dial(t, g.GRPCAddr())).DeployArtifact(context.Background(), &pb.DeployArtifactRequest{})
	if !role.IsReadOnly(err) {
		t.Fatalf("write through a worker gateway: %v, want the Guard's refusal", err)
	}
	resp, err := http.Post("http://"+g.HTTPAddr()+"/artifacts", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("HTTP write through a worker gateway: %d, want 403", resp.StatusCode)
	}
}

// refused is an address nothing listens on.
func refused(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestHTTPReadsRetriedWritesNot(t *testing.T) {
	// Two workers by round robin, one of them gone: every read reaches the
	// live one (retried once on it after the refused connection); an
	// idempotent DELETE, a write, is never retried, so one of two fails.
	domain := newDomain()
	// The live one accepts writes, so that a DELETE that reaches it succeeds.
	live := member(t, domain, "w1", role.Worker, false, nil, serve(t, "w1", role.NewGuard(role.Static(role.Manager))))
	member(t, domain, "w2", role.Worker, false, []string{live.Self().Addr}, map[string]string{"grpc": refused(t), "http": refused(t)})
	obs := member(t, domain, "gw", "", true, []string{live.Self().Addr}, nil)
	waitRoutable(t, obs, cluster.SubDomainWorker, 2)
	g := start(t, Config{Reads: Route{Node: obs, SubDomain: cluster.SubDomainWorker, Policy: lb.RoundRobin}})
	for i := range 4 {
		resp, err := http.Get("http://" + g.HTTPAddr() + "/artifacts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("read %d: %d, want 200 after a retry", i, resp.StatusCode)
		}
	}
	failed := 0
	for range 2 {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+g.HTTPAddr()+"/artifacts/a", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			failed++
		default:
			t.Fatalf("DELETE: %d", resp.StatusCode)
		}
	}
	if failed != 1 {
		t.Fatalf("%d of 2 DELETEs failed, want 1: writes must not be retried on the live worker", failed)
	}
}

func TestWriteToFrozenManagerGetsUnavailable(t *testing.T) {
	// The case of issue 21: a write queued to a paused active manager must
	// not hang until it resumes; the client hears Unavailable in time, and
	// can retry once a stand-by has taken over.
	domain := newDomain()
	w := member(t, domain, "w1", role.Worker, false, nil, serve(t, "w1", role.NewGuard(role.Static(role.Worker))))
	seeds := []string{w.Self().Addr}
	member(t, domain, "m1", role.Manager, false, seeds, map[string]string{"grpc": frozen(t), "http": frozen(t)})
	obs := member(t, domain, "gw", "", true, seeds, nil)
	waitRoutable(t, obs, cluster.SubDomainManager, 1)
	const timeout = 300 * time.Millisecond
	g := start(t, Config{
		Reads:           Route{Node: obs, SubDomain: cluster.SubDomainWorker},
		Writes:          &Route{Node: obs, SubDomain: cluster.SubDomainManager, Policy: lb.ActiveFirst},
		UpstreamTimeout: timeout,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	_, err := pb.NewCatalogClient(dial(t, g.GRPCAddr())).DeployArtifact(ctx, &pb.DeployArtifactRequest{})
	wantUnavailable(t, "gRPC write to a frozen manager", err)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+g.HTTPAddr()+"/artifacts/a", strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	want503(t, "HTTP write to a frozen manager", resp, err)
	if took := time.Since(t0); took > 2*timeout+3*time.Second {
		t.Fatalf("two writes took %v, want about twice the upstream timeout %v", took, timeout)
	}
}
