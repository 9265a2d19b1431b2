package role_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// TestWriterIdentityRule: on the active manager, with the rule, a write
// over mutual TLS from a worker's certificate is refused (PermissionDenied,
// 403), a read from it is served, and a write from a manager's certificate
// is served.
func TestWriterIdentityRule(t *testing.T) {
	ca := trusttest.CA(t, "d.test")
	srvSrc := trusttest.Member(t, ca, "mgt", trust.RoleManager, "m1")
	worker := trusttest.Member(t, ca, "worker", trust.RoleWorker, "w1")
	manager := trusttest.Member(t, ca, "mgt", trust.RoleManager, "m2")
	g := role.NewGuard(role.Static(role.Manager), role.RequireWriterIdentity("d.test"))

	// gRPC over mutual TLS.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(trust.ServerTLSConfig(srvSrc, trust.AuthorizeDomain("d.test")))),
		grpc.UnaryInterceptor(g.UnaryServerInterceptor()), grpc.StreamInterceptor(g.StreamServerInterceptor()))
	srv := &server{}
	testpb.RegisterGuardServer(gs, srv)
	go gs.Serve(lis)
	defer gs.Stop()
	dial := func(src *trust.Source) testpb.GuardClient {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(
			credentials.NewTLS(trust.ClientTLSConfig(src, trust.AuthorizeDomain("d.test")))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return testpb.NewGuardClient(cc)
	}
	ctx := context.Background()
	wc, mc := dial(worker), dial(manager)
	_, err = wc.Put(ctx, &testpb.Item{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "spiffe://d.test/worker/worker/w1") {
		t.Errorf("worker's write: %v, want PermissionDenied naming the caller", err)
	}
	if _, err := wc.Get(ctx, &testpb.Item{}); err != nil {
		t.Errorf("worker's read: %v", err)
	}
	if _, err := mc.Put(ctx, &testpb.Item{}); err != nil {
		t.Errorf("manager's write: %v", err)
	}
	if n := srv.count("Put"); n != 1 {
		t.Errorf("Put ran %d times, want 1 (the manager's)", n)
	}

	// HTTP over mutual TLS.
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: g.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })),
		TLSConfig: trust.ServerTLSConfig(srvSrc, trust.AuthorizeDomain("d.test"))}
	go hs.ServeTLS(hl, "", "")
	defer hs.Close()
	url := "https://" + hl.Addr().String()
	client := func(src *trust.Source) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: trust.ClientTLSConfig(src, trust.AuthorizeDomain("d.test"))}}
	}
	for _, c := range []struct {
		who    string
		src    *trust.Source
		method string
		want   int
	}{
		{"worker", worker, http.MethodPost, http.StatusForbidden},
		{"worker", worker, http.MethodGet, http.StatusOK},
		{"manager", manager, http.MethodPost, http.StatusOK},
	} {
		req, _ := http.NewRequest(c.method, url+"/x", nil)
		resp, err := client(c.src).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.who, c.method, resp.StatusCode, body, c.want)
		}
		if c.want == http.StatusForbidden && !strings.Contains(string(body), role.ReasonWriterNotAuthorized) {
			t.Errorf("%s %s: body %s lacks the reason", c.who, c.method, body)
		}
	}

	// Plain HTTP (no client certificate) cannot write either.
	plain := httptest.NewServer(g.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer plain.Close()
	resp, err := http.Post(plain.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("write without TLS: %d, want 403", resp.StatusCode)
	}
}
