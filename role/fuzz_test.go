package role_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/carbonkit/carbon/role"
)

// oracleRead decides, independently of the package's code and in the
// plainest way, whether r is a read under the documented rules and the
// rules of httpRules.
func oracleRead(r *http.Request) bool {
	if r.Method == http.MethodPost && r.URL.Path == "/graphql" && r.Header.Get("X-GraphQL-Operation") == "query" {
		return true
	}
	routes := [][2]string{{"POST", "/search"}, {"POST", "/api/*/query"}, {"GET", "/ws"}, {"CONNECT", "/tunnel"}}
	p := r.URL.Path
	ruleable := (p == "*" || strings.HasPrefix(p, "/") && (path.Clean(p) == p || path.Clean(p) != "/" && path.Clean(p)+"/" == p)) &&
		!strings.Contains(strings.ToLower(r.URL.RawPath), "%2f")
	allowed := func(m string, fold bool) bool {
		if !ruleable {
			return false
		}
		for _, rt := range routes {
			same := rt[0] == m || fold && strings.EqualFold(rt[0], m)
			if ok, _ := path.Match(rt[1], p); same && ok {
				return true
			}
		}
		return false
	}
	isRead := func(m string, fold bool) bool {
		for _, rm := range []string{"GET", "HEAD", "OPTIONS"} {
			if m == rm || fold && strings.EqualFold(m, rm) {
				return true
			}
		}
		return allowed(m, fold)
	}
	if !isRead(r.Method, false) {
		return false
	}
	claims := func(vs []string) bool {
		for _, v := range vs {
			for _, m := range strings.Split(v, ",") {
				if m = strings.TrimSpace(m); m != "" && !isRead(m, true) {
					return false
				}
			}
		}
		return true
	}
	upgrade := false
	for k, vs := range r.Header {
		switch strings.ToLower(strings.ReplaceAll(k, "_", "-")) {
		case "x-http-method-override", "x-http-method", "x-method-override":
			if !claims(vs) {
				return false
			}
		case "upgrade":
			upgrade = true
		case "connection":
			for _, v := range vs {
				for _, tok := range strings.Split(v, ",") {
					if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
						upgrade = true
					}
				}
			}
		}
	}
	if upgrade && !allowed(r.Method, false) {
		return false
	}
	for _, pair := range strings.FieldsFunc(r.URL.RawQuery, func(c rune) bool { return c == '&' || c == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if !strings.EqualFold(k, "_method") {
			continue
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		if !claims([]string{v}) {
			return false
		}
	}
	return true
}

// FuzzHTTPWorkerNeverWrites checks that no combination of method, path,
// query and headers reaches a worker's handler unless it is a read. Run
// it with
//
//	go test -run=^$ -fuzz=FuzzHTTPWorkerNeverWrites -fuzztime=60s ./role
func FuzzHTTPWorkerNeverWrites(f *testing.F) {
	seeds := []struct{ method, path, rawPath, query, k1, v1, k2, v2 string }{
		{"GET", "/", "", "", "", "", "", ""},
		{"POST", "/x", "", "", "", "", "", ""},
		{"GET", "/x", "", "", "X-HTTP-Method-Override", "DELETE", "", ""},
		{"GET", "/x", "", "", "x_http_method", "get, put", "", ""},
		{"GET", "/x", "", "a=1;%5Fmethod=P%55T", "", "", "", ""},
		{"GET", "/x", "", "_method=+head+", "", "", "", ""},
		{"GET", "/chat", "", "", "Connection", "Upgrade", "Upgrade", "websocket"},
		{"GET", "/ws", "", "", "Connection", "upgrade", "Upgrade", "websocket"},
		{"POST", "/search", "", "", "", "", "", ""},
		{"POST", "/search", "", "_method=DELETE", "", "", "", ""},
		{"POST", "/api/v2/query", "/api%2Fv2/query", "", "", "", "", ""},
		{"POST", "/a/../search", "", "", "", "", "", ""},
		{"CONNECT", "/tunnel", "", "", "", "", "", ""},
		{"TRACE", "/", "", "", "", "", "", ""},
		{"OPTIONS", "*", "", "", "X-Method-Override", "OPTIONS", "", ""},
		{"POST", "/graphql", "", "", "X-GraphQL-Operation", "query", "", ""},
		{"get", "/", "", "", "", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.rawPath, s.query, s.k1, s.v1, s.k2, s.v2)
	}
	g := role.NewGuard(role.Static(role.Worker), httpRules()...)
	f.Fuzz(func(t *testing.T, method, p, rawPath, query, k1, v1, k2, v2 string) {
		h := &recorder{}
		mw := g.HTTP(h)
		r := &http.Request{
			Method: method,
			URL:    &url.URL{Path: p, RawPath: rawPath, RawQuery: query},
			Header: http.Header{},
			Host:   "node",
		}
		// Keys go in verbatim: a handler may look them up in any form.
		if k1 != "" {
			r.Header[k1] = append(r.Header[k1], v1)
		}
		if k2 != "" {
			r.Header[k2] = append(r.Header[k2], v2)
		}
		read := oracleRead(r)
		w := httptest.NewRecorder()
		mw.ServeHTTP(w, r)
		if len(h.reached) > 0 && !read {
			t.Fatalf("a write reached the worker's handler: %s %q raw %q query %q headers %q", method, p, rawPath, query, r.Header)
		}
		if len(h.reached) == 0 && w.Code != http.StatusForbidden {
			t.Fatalf("rejected with status %d, want 403", w.Code)
		}
		// The Guard is no stricter than the rules on plain reads.
		uq, err := url.QueryUnescape(query)
		plain := (method == "GET" || method == "HEAD" || method == "OPTIONS") && k1 == "" && k2 == "" &&
			err == nil && !strings.Contains(strings.ToLower(uq), "method")
		if plain && len(h.reached) == 0 {
			t.Fatalf("a plain read was rejected: %s %q", method, p)
		}
	})
}
