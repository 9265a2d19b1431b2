package role

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
)

// Guard enforces read-only mode: on a node that is not writable it lets
// reads through and rejects writes, as its [Classifier] tells them apart.
// It reads the live [State] on every call and caches nothing about it, so
// a passive manager that becomes active starts accepting writes on its
// next call, with no restart.
//
// A node is writable only when its State reports Role() == [Manager] and
// Writable(): a worker or an observer is read-only whatever Writable says.
//
// A Guard is safe for concurrent use.
type Guard struct {
	state    State
	class    *Classifier
	endpoint string      // active disclosure; "" = off
	writer   *writerRule // nil: any caller may write
	rejected metric.Int64Counter
	attrs    cowMap[attrKey, metric.AddOption]
}

type attrKey struct {
	role   Role
	method string
}

// GuardOption configures [NewGuard]. Every [ClassifierOption] is a
// GuardOption too.
type GuardOption interface {
	applyGuard(*guardConfig)
}

type guardConfig struct {
	class    *Classifier
	rules    []ClassifierOption
	endpoint string
	mp       metric.MeterProvider
	writer   *writerRule
}

type guardOption func(*guardConfig)

func (o guardOption) applyGuard(g *guardConfig) { o(g) }

// WithClassifier makes the Guard use c, shared for instance with a
// client-side router so that both agree on what a write is. It cannot be
// combined with ClassifierOptions, which configure a Guard's own
// Classifier: NewGuard panics if both are given.
func WithClassifier(c *Classifier) GuardOption {
	return guardOption(func(g *guardConfig) { g.class = c })
}

// WithActiveDisclosure makes rejections name the address of the active
// manager's endpoint (for instance "grpc" or "http"), as the State's
// [ActiveReporter] reports it, so that clients can retry there. It is off
// by default because managers may sit behind an internal firewall whose
// addresses clients should not learn.
func WithActiveDisclosure(endpoint string) GuardOption {
	return guardOption(func(g *guardConfig) { g.endpoint = endpoint })
}

// WithMeterProvider sets where the Guard's metrics go; the default is
// otel.GetMeterProvider() at the time NewGuard is called.
func WithMeterProvider(mp metric.MeterProvider) GuardOption {
	return guardOption(func(g *guardConfig) { g.mp = mp })
}

// MetricRejected is the name of the Guard's counter of rejected writes,
// with attributes "role" (the node's role) and "method" (the gRPC full
// method, the HTTP method, or "in-process" for [Guard.CheckWrite] outside
// a gRPC call).
const MetricRejected = "carbon.role.rejected_writes"

// NewGuard returns a Guard over s. Without [WithClassifier], the Guard
// builds its own [Classifier] from the ClassifierOptions among opts.
func NewGuard(s State, opts ...GuardOption) *Guard {
	var cfg guardConfig
	for _, o := range opts {
		o.applyGuard(&cfg)
	}
	if cfg.class != nil && len(cfg.rules) > 0 {
		panic("role: NewGuard: WithClassifier cannot be combined with classifier rules; add them to the Classifier")
	}
	if cfg.class == nil {
		cfg.class = NewClassifier(cfg.rules...)
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	g := &Guard{state: s, class: cfg.class, endpoint: cfg.endpoint, writer: cfg.writer}
	c, err := cfg.mp.Meter("github.com/carbonkit/carbon/role").Int64Counter(MetricRejected,
		metric.WithDescription("Writes rejected by a read-only node."),
		metric.WithUnit("{request}"))
	if err != nil {
		c = noop.Int64Counter{}
	}
	g.rejected = c
	return g
}

// Classifier returns the Classifier the Guard uses.
func (g *Guard) Classifier() *Classifier { return g.class }

func (g *Guard) writable() bool {
	return g.state.Role() == Manager && g.state.Writable()
}

// UnaryServerInterceptor returns an interceptor that runs reads, and
// writes on a writable node, and rejects other writes with the status of
// [ReadOnlyError.GRPCStatus] (FailedPrecondition).
func (g *Guard) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		w := g.writable()
		if (w && g.writer == nil) || g.class.IsRead(info.FullMethod) {
			return handler(ctx, req)
		}
		if !w {
			return nil, g.reject(ctx, info.FullMethod, info.FullMethod)
		}
		if err := g.writer.checkGRPC(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the stream counterpart of
// [Guard.UnaryServerInterceptor]. A write stream is checked when it opens
// and again on every message it receives: each is a write, and a manager
// that stops being active mid-stream must stop taking them (RecvMsg then
// drops the message and returns the rejection, which the handler is
// expected to return). What a write handler sends is not checked, and a
// write stream that receives nothing more is not cut.
func (g *Guard) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if g.class.IsRead(info.FullMethod) {
			return handler(srv, ss)
		}
		if !g.writable() {
			return g.reject(ss.Context(), info.FullMethod, info.FullMethod)
		}
		if g.writer != nil {
			if err := g.writer.checkGRPC(ss.Context()); err != nil {
				return err
			}
		}
		return handler(srv, &writeStream{ServerStream: ss, g: g, method: info.FullMethod})
	}
}

type writeStream struct {
	grpc.ServerStream
	g      *Guard
	method string
}

// RecvMsg checks after receiving, since the handler is usually blocked in
// RecvMsg when the node steps down: the message that arrives then is
// dropped, not handed over.
func (s *writeStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !s.g.writable() {
		return s.g.reject(s.Context(), s.method, s.method)
	}
	return nil
}

// HTTP returns middleware that serves reads, and writes on a writable
// node, with next, and answers other writes with 403 Forbidden and an RFC
// 9457 application/problem+json body:
//
//	{"type": ProblemType, "title": "Read-only node", "status": 403,
//	 "detail": "...", "reason": "READ_ONLY_NODE", "domain": "...",
//	 "role": "worker", "active": "..." (only when disclosed)}
//
// 403 rather than 405: the method is allowed by the resource, the node
// refuses it for what it is.
func (g *Guard) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := g.writable()
		if (ok && g.writer == nil) || g.class.IsReadRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		if !ok {
			g.rejectHTTP(w, r)
			return
		}
		if g.checkWriterHTTP(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// problem is an RFC 9457 problem details document with our extension
// members.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Reason string `json:"reason"`
	Domain string `json:"domain"`
	Role   string `json:"role"`
	Active string `json:"active,omitempty"`
}

func (g *Guard) rejectHTTP(w http.ResponseWriter, r *http.Request) {
	e := g.readOnlyError(r.Method + " " + r.URL.Path)
	g.count(r.Context(), e.Role, httpMethodAttr(r.Method))
	body, _ := json.Marshal(problem{
		Type:   ProblemType,
		Title:  "Read-only node",
		Status: http.StatusForbidden,
		Detail: "This node is a read-only " + e.Role.String() + "; send writes to the active manager.",
		Reason: ReasonReadOnly,
		Domain: e.Domain,
		Role:   e.Role.String(),
		Active: e.Active,
	})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(body)
}

// httpMethodAttr bounds the cardinality of the method attribute, as the
// OpenTelemetry HTTP conventions do.
func httpMethodAttr(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// CheckWrite returns nil if the node may write now, and otherwise a
// [*ReadOnlyError] (wrapping [ErrReadOnly]) naming its role and domain.
// Call it on in-process write paths that no interceptor guards: a
// scheduled job, a message consumer, or a gRPC handler of a method
// classified as a read that sometimes writes. Returned from a gRPC
// handler, the error reaches the client as the usual FailedPrecondition.
func (g *Guard) CheckWrite(ctx context.Context) error {
	if g.writable() {
		if g.writer != nil {
			if _, ok := peer.FromContext(ctx); ok {
				return g.writer.checkGRPC(ctx)
			}
		}
		return nil
	}
	method, ok := grpc.Method(ctx)
	attr := method
	if !ok {
		attr = "in-process"
	}
	return g.reject(ctx, method, attr)
}

// reject counts a rejected write and returns its error.
func (g *Guard) reject(ctx context.Context, method, attr string) error {
	e := g.readOnlyError(method)
	g.count(ctx, e.Role, attr)
	return e
}

func (g *Guard) readOnlyError(method string) *ReadOnlyError {
	e := &ReadOnlyError{Role: g.state.Role(), Method: method}
	if d, ok := g.state.(DomainReporter); ok {
		e.Domain = d.Domain()
	}
	if g.endpoint != "" {
		if a, ok := g.state.(ActiveReporter); ok {
			if addr, ok := a.ActiveEndpoint(g.endpoint); ok {
				e.Active = addr
			}
		}
	}
	return e
}

func (g *Guard) count(ctx context.Context, r Role, method string) {
	k := attrKey{role: r, method: method}
	opt, ok := g.attrs.load(k)
	if !ok {
		opt = attrOption(r, method)
		if !g.attrs.store(k, opt) { // full: bound the cardinality
			opt = attrOption(r, "_OTHER")
		}
	}
	g.rejected.Add(ctx, 1, opt)
}

func attrOption(r Role, method string) metric.AddOption {
	return metric.WithAttributeSet(attribute.NewSet(
		attribute.String("role", r.String()), attribute.String("method", method)))
}

// ManagerOnly serves h on a manager and answers 404 Not Found elsewhere,
// as if the route did not exist: workers never mount the management
// console. It checks s.Role() on every request but not Writable(): a
// passive manager shows its console, read-only (wrap h in a [Guard] to
// enforce that), so operators can inspect a stand-by.
func ManagerOnly(s State, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Role() != Manager {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
