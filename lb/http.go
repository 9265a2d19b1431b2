package lb

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"

	"github.com/carbonkit/carbon/cluster"
)

// Transport is the http.RoundTripper NewTransport returns.
type Transport struct {
	n          *cluster.Node
	s          *state
	err        error
	base       http.RoundTripper
	unregister func()

	mu  sync.Mutex
	cur atomic.Pointer[httpSet]
}

type httpSet struct {
	v     *cluster.View
	x     *set
	addrs []string
}

// NewTransport returns an http.RoundTripper that sends each request to a
// routable member of subDomain, at its "http" endpoint by default
// ([WithEndpoint]), chosen with the same policies as Dial (ConsistentHash
// takes its key from [WithKey] on the request's context, or from
// [WithRequestKey]). The request's URL host is replaced by the member's
// address; its scheme is kept ("http" if empty).
//
// An idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or one with
// an Idempotency-Key header) whose body can be replayed (none, or GetBody
// set) is retried once on another member after a connection failure,
// unless [WithRetryIf] says otherwise.
//
// The member list is read from n's latest view on each request; nothing
// runs in the background. Bad options are returned by every RoundTrip. The
// returned value is a *Transport: call its Close when done.
func NewTransport(n *cluster.Node, subDomain string, opts ...Option) http.RoundTripper {
	t := &Transport{n: n}
	o, err := buildOptions("http", opts)
	switch {
	case n == nil:
		t.err = fmt.Errorf("%w: NewTransport: nil node", ErrInvalidOption)
	case subDomain == "":
		t.err = fmt.Errorf("%w: NewTransport: empty sub-domain", ErrInvalidOption)
	case err != nil:
		t.err = err
	}
	if t.err != nil {
		return t
	}
	t.s = newState(o, subDomain, "http")
	t.base = o.base
	if t.base == nil {
		t.base = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.unregister = t.s.registerMetrics()
	return t
}

// Close stops exporting metrics and closes the idle connections of the
// underlying transport. The Transport still works afterwards.
func (t *Transport) Close() error {
	if t.unregister != nil {
		t.unregister()
	}
	if t.s != nil {
		t.s.close()
	}
	t.CloseIdleConnections()
	return nil
}

// CloseIdleConnections closes the idle connections of the underlying
// transport, if it has that method.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// current returns the set for the node's latest view.
func (t *Transport) current() *httpSet {
	v := t.n.View()
	if h := t.cur.Load(); h != nil && h.v == v {
		return h
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.cur.Load(); h != nil && h.v == v {
		return h
	}
	ps := t.s.peers(v)
	stats := make([]*memberStats, len(ps))
	addrs := make([]string, len(ps))
	for i, p := range ps {
		stats[i] = t.s.statsFor(p.name)
		addrs[i] = p.addr
	}
	h := &httpSet{v: v, x: t.s.newSet(t.s.o.policy, ps, stats), addrs: addrs}
	t.cur.Store(h)
	return h
}

// RoundTrip sends req to a member.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.err != nil {
		closeBody(req)
		return nil, t.err
	}
	h := t.current()
	key, hasKey := keyFrom(req.Context())
	if !hasKey && t.s.o.requestKey != nil {
		if k := t.s.o.requestKey(req); k != "" {
			key, hasKey = keyHash(k), true
		}
	}
	if next := h.x.slowNext.Load(); next != 0 {
		// Slow start moves on with the requests: nothing runs in the
		// background for a Transport.
		if now := t.s.now(); now >= next {
			h.x.slowNext.Store(h.x.refreshSlow(now))
		}
	}
	i := h.x.pick(key, hasKey, -1)
	if i < 0 {
		closeBody(req)
		return nil, fmt.Errorf("%w of sub-domain %q with endpoint %q", ErrNoMembers, t.s.sub, t.s.o.endpoint)
	}
	resp, err := t.send(req, h, i, req.Body)
	if err == nil || req.Context().Err() != nil || !replayable(req) || (t.s.o.retryIf != nil && !t.s.o.retryIf(req)) {
		return resp, err
	}
	j := h.x.pick(key, hasKey, i)
	if j < 0 {
		return nil, err
	}
	body := req.Body
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.send(req, h, j, body)
}

func (t *Transport) send(req *http.Request, h *httpSet, i int, body io.ReadCloser) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.Body = body
	out.URL.Host = h.addrs[i]
	if out.URL.Scheme == "" {
		out.URL.Scheme = "http"
	}
	s, st := t.s, h.x.e[i].st
	s.begin(st)
	start := s.now()
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		s.finish(st, start, true, true)
		return nil, err
	}
	fail := false
	for _, c := range s.o.ejection.HTTPStatus {
		if resp.StatusCode == c {
			fail = true
		}
	}
	if resp.Body == nil {
		s.finish(st, start, fail, fail)
		return resp, nil
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: func() { s.finish(st, start, fail, fail) }}
	return resp, nil
}

// doneBody ends the call when the body is closed or read to its end, so
// that least-loaded counts a streaming response as in flight.
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// replayable reports whether req may be sent again: idempotent, with a body
// that can be had again.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		if req.Header.Get("Idempotency-Key") == "" && req.Header.Get("X-Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// NewReverseProxy returns a reverse proxy for a gateway: it forwards each
// request, with X-Forwarded-For/-Host/-Proto set, to a member of subDomain
// through NewTransport(n, subDomain, opts...). Close its Transport (a
// *Transport) when done.
func NewReverseProxy(n *cluster.Node, subDomain string, opts ...Option) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = subDomain // replaced by the Transport
			pr.Out.Host = pr.In.Host
		},
		Transport: NewTransport(n, subDomain, opts...),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code := http.StatusBadGateway
			if errors.Is(err, ErrNoMembers) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, http.StatusText(code), code)
		},
	}
}
