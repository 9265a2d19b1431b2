package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/carbonkit/carbon/cluster"
	// The demo services' descriptors, so that the proxy tells their reads
	// from their writes by idempotency_level.
	_ "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/lb"
	"github.com/carbonkit/carbon/role"
)

// StatusPath is where a gateway serves its own status page.
const StatusPath = "/_gateway/status"

// Route is where a gateway sends calls: the routable members of a
// sub-domain, as an observer Node of their domain sees them.
type Route struct {
	Node      *cluster.Node
	SubDomain string
	// Policy balances the calls (lb.ActiveFirst for managers).
	Policy lb.Policy
}

// Config configures a Gateway.
type Config struct {
	// Reads receives every call, or only the reads when Writes is set.
	Reads Route
	// Writes, when set, receives the writes: a shared balancer.
	Writes *Route
	// ManagerPaths are HTTP path prefixes a shared balancer sends to
	// Writes whatever the method: what only managers serve. Default
	// {"/console"}, the management console.
	ManagerPaths []string
	// GRPCAddr and HTTPAddr are the listen addresses. Default
	// "127.0.0.1:0".
	GRPCAddr, HTTPAddr string
	// Options are added to every lb.Dial and lb.NewReverseProxy (meter
	// provider, slow start, ...).
	Options []lb.Option
	// Metrics, when set, is served at GET /metrics (Prometheus text
	// format), by the gateway itself: that path is not forwarded, since a
	// scrape must reach one known process, and each backend serves its
	// own /metrics on its own address.
	Metrics http.Handler
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// UpstreamTimeout bounds how long a call waits for the upstream's
	// first answer (gRPC headers, a message or a status; HTTP response
	// headers). Past it the client gets 503 / Unavailable with a retry
	// hint. Default 10 s; negative disables it. A stream that stays
	// silent longer on purpose should send its headers first.
	UpstreamTimeout time.Duration
	// RetryAfter is the delay a 503 (Retry-After) or Unavailable
	// (RetryInfo) suggests. Default 1 s.
	RetryAfter time.Duration
}

// Gateway is a running balancer.
type Gateway struct {
	up       upstreamPolicy
	conns    []*grpc.ClientConn
	proxies  []*httputil.ReverseProxy
	grpc     *grpc.Server
	http     *http.Server
	grpcAddr string
	httpAddr string
	served   sync.WaitGroup
	once     sync.Once
}

// Start dials the routes and starts serving.
func Start(cfg Config) (g *Gateway, err error) {
	if cfg.Reads.Node == nil || (cfg.Writes != nil && cfg.Writes.Node == nil) {
		return nil, errors.New("gateway: a Route has no Node")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	g = &Gateway{}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	dial := func(r Route) (*grpc.ClientConn, error) {
		cc, err := lb.Dial(r.Node, r.SubDomain, append([]lb.Option{lb.WithPolicy(r.Policy), lb.WithLogger(log)}, cfg.Options...)...)
		if err == nil {
			g.conns = append(g.conns, cc)
		}
		return cc, err
	}
	proxy := func(r Route, extra ...lb.Option) *httputil.ReverseProxy {
		opts := append([]lb.Option{lb.WithPolicy(r.Policy), lb.WithLogger(log)}, extra...)
		p := lb.NewReverseProxy(r.Node, r.SubDomain, append(opts, cfg.Options...)...)
		g.proxies = append(g.proxies, p)
		return p
	}

	g.up = upstreamPolicy{timeout: cfg.UpstreamTimeout, retryAfter: cfg.RetryAfter}
	if g.up.timeout == 0 {
		g.up.timeout = 10 * time.Second
	}
	if g.up.retryAfter <= 0 {
		g.up.retryAfter = time.Second
	}
	classifier := role.NewClassifier()
	// A route that should reach a writer (the active manager first): a
	// read-only refusal from it means no manager is writable right now.
	g.up.writerRoute = cfg.Writes != nil || cfg.Reads.Policy == lb.ActiveFirst

	var gp *lb.Proxy
	var handler http.Handler
	nodes := []*cluster.Node{cfg.Reads.Node}
	reads, err := dial(cfg.Reads)
	if err != nil {
		return nil, err
	}
	httpOpts := []lb.Option{lb.WithRetryIf(classifier.IsReadRequest)}
	if cfg.Writes == nil {
		// One route: every method goes to it, none needs placing (reads
		// known by their descriptor may still be retried).
		gp = lb.NewProxy(reads, reads, lb.ProxyRetryReads())
		handler = g.up.http(proxy(cfg.Reads, httpOpts...), g.up.writerRoute)
	} else {
		writes, err := dial(*cfg.Writes)
		if err != nil {
			return nil, err
		}
		// Reads go to the workers and writes to the managers by the same
		// classifier as the role Guard; the descriptors of the services
		// are linked in (catalogpb, imported below for that).
		gp = lb.NewProxy(reads, writes, lb.ProxyRetryReads())
		rp, wp := g.up.http(proxy(cfg.Reads, httpOpts...), false), g.up.http(proxy(*cfg.Writes, httpOpts...), true)
		mgrPaths := cfg.ManagerPaths
		if mgrPaths == nil {
			mgrPaths = []string{"/console"}
		}
		toManagers := func(p string) bool {
			for _, m := range mgrPaths {
				if p == m || strings.HasPrefix(p, strings.TrimSuffix(m, "/")+"/") {
					return true
				}
			}
			return false
		}
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if classifier.IsReadRequest(r) && !toManagers(r.URL.Path) {
				rp.ServeHTTP(w, r)
			} else {
				wp.ServeHTTP(w, r)
			}
		})
		if cfg.Writes.Node != cfg.Reads.Node {
			nodes = append(nodes, cfg.Writes.Node)
		}
	}

	gl, err := net.Listen("tcp", orDefault(cfg.GRPCAddr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("gateway: gRPC listen address: %w", err)
	}
	hl, err := net.Listen("tcp", orDefault(cfg.HTTPAddr, "127.0.0.1:0"))
	if err != nil {
		gl.Close()
		return nil, fmt.Errorf("gateway: HTTP listen address: %w", err)
	}
	g.grpcAddr, g.httpAddr = gl.Addr().String(), hl.Addr().String()
	g.grpc = grpc.NewServer(append(gp.ServerOptions(), grpc.StreamInterceptor(g.up.grpc))...)
	mux := http.NewServeMux()
	mux.Handle("GET "+StatusPath, cluster.NewStatusHandler(nodes...))
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	mux.Handle("/", handler)
	g.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.served.Add(2)
	go func() { defer g.served.Done(); _ = g.grpc.Serve(gl) }()
	go func() { defer g.served.Done(); _ = g.http.Serve(hl) }()
	return g, nil
}

// GRPCAddr is the address of the gateway's gRPC listener.
func (g *Gateway) GRPCAddr() string { return g.grpcAddr }

// HTTPAddr is the address of the gateway's HTTP listener.
func (g *Gateway) HTTPAddr() string { return g.httpAddr }

// Shutdown stops accepting calls and waits for those in flight, up to ctx,
// then closes the connections into the domain. The Nodes are the caller's.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	if g.http != nil {
		err = g.http.Shutdown(ctx)
	}
	if g.grpc != nil {
		done := make(chan struct{})
		go func() { g.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.grpc.Stop()
			<-done
		}
	}
	g.Close()
	return err
}

// Close stops at once.
func (g *Gateway) Close() {
	g.once.Do(func() {
		if g.grpc != nil {
			g.grpc.Stop()
		}
		if g.http != nil {
			g.http.Close()
		}
		g.served.Wait()
		for _, c := range g.conns {
			c.Close()
		}
		for _, p := range g.proxies {
			if t, ok := p.Transport.(*lb.Transport); ok {
				t.Close()
			}
		}
	})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
