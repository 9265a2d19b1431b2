package role_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

// A worker's gRPC server: reads declared NO_SIDE_EFFECTS in their proto
// are served, writes are rejected with FailedPrecondition.
func ExampleGuard_UnaryServerInterceptor() {
	g := role.NewGuard(role.Static(role.Worker))
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(g.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(g.StreamServerInterceptor()),
	)
	testpb.RegisterGuardServer(srv, &server{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()

	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	c := testpb.NewGuardClient(conn)

	_, err = c.Get(context.Background(), &testpb.Item{Key: "a"})
	fmt.Println("Get:", status.Code(err))
	_, err = c.Put(context.Background(), &testpb.Item{Key: "a"})
	fmt.Println("Put:", status.Code(err), role.IsReadOnly(err))
	// Output:
	// Get: OK
	// Put: FailedPrecondition true
}

// A worker's HTTP server, with a POST search endpoint declared a read.
func ExampleGuard_HTTP() {
	g := role.NewGuard(role.Static(role.Worker), role.WithHTTPReadRule(http.MethodPost, "/search"))
	h := g.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/items", nil),
		httptest.NewRequest(http.MethodPost, "/search", strings.NewReader("q=x")),
		httptest.NewRequest(http.MethodPost, "/items", strings.NewReader("x")),
		httptest.NewRequest(http.MethodGet, "/items?_method=DELETE", nil),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(r.Method, r.URL, w.Code, w.Header().Get("Content-Type"))
	}
	// Output:
	// GET /items 200 text/plain; charset=utf-8
	// POST /search 200 text/plain; charset=utf-8
	// POST /items 403 application/problem+json
	// GET /items?_method=DELETE 403 application/problem+json
}

// A Classifier shared by a Guard and a client-side router agrees with it
// on what a write is.
func ExampleNewClassifier() {
	c := role.NewClassifier(role.WithReadMethods("/carbon.test.v1.Guard/Search"))
	_ = role.NewGuard(role.Static(role.Worker), role.WithClassifier(c))
	for _, m := range []string{
		testpb.Guard_Get_FullMethodName,    // option idempotency_level = NO_SIDE_EFFECTS
		testpb.Guard_Search_FullMethodName, // rule
		testpb.Guard_Put_FullMethodName,
		"/grpc.health.v1.Health/Check",
		"/unknown.v1.Svc/Get",
	} {
		fmt.Println(m, c.IsRead(m))
	}
	// Output:
	// /carbon.test.v1.Guard/Get true
	// /carbon.test.v1.Guard/Search true
	// /carbon.test.v1.Guard/Put false
	// /grpc.health.v1.Health/Check true
	// /unknown.v1.Svc/Get false
}

// In-process write paths check before they write.
func ExampleGuard_CheckWrite() {
	g := role.NewGuard(role.Static(role.Worker))
	err := g.CheckWrite(context.Background())
	fmt.Println(err)
	// Output:
	// role: read-only node: worker rejects writes
}
