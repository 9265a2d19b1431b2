package role_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/carbonkit/carbon/role"
)

// httpRules are the rules of the HTTP tests and of the fuzz test.
func httpRules() []role.GuardOption {
	return []role.GuardOption{
		role.WithHTTPReadRule(http.MethodPost, "/search"),
		role.WithHTTPReadRule(http.MethodPost, "/api/*/query"),
		role.WithHTTPReadRule(http.MethodGet, "/ws"),
		role.WithHTTPReadRule(http.MethodConnect, "/tunnel"),
		role.WithHTTPReadMatcher(role.HTTPMatchFunc(func(r *http.Request) bool {
			return r.Method == http.MethodPost && r.URL.Path == "/graphql" && r.Header.Get("X-GraphQL-Operation") == "query"
		})),
	}
}

// recorder is a handler that records whether a request reached it.
type recorder struct{ reached []*http.Request }

func (h *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.reached = append(h.reached, r)
	w.WriteHeader(http.StatusOK)
}

type hdr = [][2]string

func TestHTTPClassification(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		target string
		header hdr
		raw    bool // set header keys verbatim, not canonicalised
		form   url.Values
		read   bool
	}{
		{"GET", "GET", "/", nil, false, nil, true},
		{"HEAD", "HEAD", "/x", nil, false, nil, true},
		{"OPTIONS", "OPTIONS", "/x", nil, false, nil, true},
		{"OPTIONS *", "OPTIONS", "*", nil, false, nil, true},
		{"POST", "POST", "/x", nil, false, nil, false},
		{"PUT", "PUT", "/x", nil, false, nil, false},
		{"PATCH", "PATCH", "/x", nil, false, nil, false},
		{"DELETE", "DELETE", "/x", nil, false, nil, false},
		{"CONNECT", "CONNECT", "/x", nil, false, nil, false},
		{"TRACE", "TRACE", "/x", nil, false, nil, false},
		{"unknown method", "PURGE", "/x", nil, false, nil, false},
		{"lower-case get is not GET", "get", "/x", nil, false, nil, false},

		{"override DELETE", "GET", "/x", hdr{{"X-HTTP-Method-Override", "DELETE"}}, false, nil, false},
		{"override GET", "GET", "/x", hdr{{"X-HTTP-Method-Override", "GET"}}, false, nil, true},
		{"override is case-insensitive", "GET", "/x", hdr{{"X-HTTP-Method-Override", "head"}}, false, nil, true},
		{"override lower-case delete", "GET", "/x", hdr{{"X-HTTP-Method-Override", "delete"}}, false, nil, false},
		{"POST claiming GET", "POST", "/x", hdr{{"X-HTTP-Method-Override", "GET"}}, false, nil, false},
		{"X-HTTP-Method", "GET", "/x", hdr{{"X-HTTP-Method", "PUT"}}, false, nil, false},
		{"X-Method-Override", "HEAD", "/x", hdr{{"X-Method-Override", "PATCH"}}, false, nil, false},
		{"comma list with a write", "GET", "/x", hdr{{"X-HTTP-Method-Override", "GET, DELETE"}}, false, nil, false},
		{"comma list of reads", "GET", "/x", hdr{{"X-HTTP-Method-Override", " GET,,\tHEAD , options"}}, false, nil, true},
		{"second value", "GET", "/x", hdr{{"X-HTTP-Method-Override", "GET"}, {"X-HTTP-Method-Override", "POST"}}, false, nil, false},
		{"two headers", "GET", "/x", hdr{{"X-HTTP-Method", "GET"}, {"X-Method-Override", "POST"}}, false, nil, false},
		{"empty override claims nothing", "GET", "/x", hdr{{"X-HTTP-Method-Override", ""}}, false, nil, true},
		{"override CONNECT", "GET", "/x", hdr{{"X-HTTP-Method-Override", "CONNECT"}}, false, nil, false},
		{"non-canonical key", "GET", "/x", hdr{{"x-http-method-override", "DELETE"}}, true, nil, false},
		{"underscore key", "GET", "/x", hdr{{"X_HTTP_Method_Override", "DELETE"}}, true, nil, false},
		{"unrelated header", "GET", "/x", hdr{{"X-Forwarded-Method", "DELETE"}}, false, nil, true},

		{"_method DELETE", "GET", "/x?_method=DELETE", nil, false, nil, false},
		{"_method get", "GET", "/x?_method=get", nil, false, nil, true},
		{"_method after others", "GET", "/x?a=1&_method=PUT", nil, false, nil, false},
		{"_method after semicolon", "GET", "/x?a=1;_method=PUT", nil, false, nil, false},
		{"_method escaped name", "GET", "/x?%5Fmethod=PUT", nil, false, nil, false},
		{"_METHOD", "GET", "/x?_METHOD=PUT", nil, false, nil, false},
		{"_method escaped read", "GET", "/x?_method=G%45T", nil, false, nil, true},
		{"_method escaped comma", "GET", "/x?_method=GET%2CDELETE", nil, false, nil, false},
		{"_method plus", "GET", "/x?_method=+GET+", nil, false, nil, true},
		{"_method too long", "GET", "/x?_method=" + strings.Repeat("%20", 40) + "GET", nil, false, nil, false},
		{"_method empty", "GET", "/x?_method=", nil, false, nil, true},
		{"_method flag", "GET", "/x?_method", nil, false, nil, true},
		{"_method twice", "GET", "/x?_method=GET&_method=POST", nil, false, nil, false},
		{"POST _method GET", "POST", "/x?_method=GET", nil, false, nil, false},
		{"x_method is not _method", "GET", "/x?x_method=PUT", nil, false, nil, true},
		{"_method in parsed form", "GET", "/x", nil, false, url.Values{"_method": {"DELETE"}}, false},

		{"websocket upgrade", "GET", "/chat", hdr{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}}, false, nil, false},
		{"Upgrade header alone", "GET", "/chat", hdr{{"Upgrade", "h2c"}}, false, nil, false},
		{"Connection upgrade alone", "GET", "/chat", hdr{{"Connection", "keep-alive, UPGRADE"}}, false, nil, false},
		{"Connection close", "GET", "/chat", hdr{{"Connection", "close"}}, false, nil, true},
		{"websocket on a ruled path", "GET", "/ws", hdr{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}}, false, nil, true},
		{"websocket upgrade by POST on a ruled path", "POST", "/ws", hdr{{"Upgrade", "websocket"}}, false, nil, false},

		{"ruled POST", "POST", "/search", nil, false, nil, true},
		{"ruled POST glob", "POST", "/api/v2/query", nil, false, nil, true},
		{"ruled glob does not cross /", "POST", "/api/v2/x/query", nil, false, nil, false},
		{"ruled POST claiming DELETE", "POST", "/search", hdr{{"X-HTTP-Method-Override", "DELETE"}}, false, nil, false},
		{"ruled POST _method DELETE", "POST", "/search?_method=DELETE", nil, false, nil, false},
		{"GET claiming ruled POST", "GET", "/search", hdr{{"X-HTTP-Method-Override", "post"}}, false, nil, true},
		{"PUT on a ruled path", "PUT", "/search", nil, false, nil, false},
		{"ruled path with trailing slash", "POST", "/search/", nil, false, nil, false},
		{"unclean ruled path", "POST", "/a/../search", nil, false, nil, false},
		{"double slash ruled path", "POST", "//search", nil, false, nil, false},
		{"encoded slash", "POST", "/api%2Fv2/query", nil, false, nil, false},
		{"ruled CONNECT", "CONNECT", "/tunnel", nil, false, nil, true},
		{"TRACE on CONNECT's path", "TRACE", "/tunnel", nil, false, nil, false},
		{"matcher rule", "POST", "/graphql", hdr{{"X-GraphQL-Operation", "query"}}, false, nil, true},
		{"matcher rule not matching", "POST", "/graphql", hdr{{"X-GraphQL-Operation", "mutation"}}, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newReq := func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "http://node"+strings.TrimPrefix(tc.target, "*"), nil)
				r.Method = tc.method
				if tc.target == "*" {
					r.URL.Path = "*"
				}
				for _, kv := range tc.header {
					if tc.raw {
						r.Header[kv[0]] = append(r.Header[kv[0]], kv[1])
					} else {
						r.Header.Add(kv[0], kv[1])
					}
				}
				r.Form = tc.form
				return r
			}
			if got := role.NewClassifier(classifierRules()...).IsReadRequest(newReq()); got != tc.read {
				t.Errorf("IsReadRequest = %v, want %v", got, tc.read)
			}
			for _, st := range []struct {
				name     string
				s        *testState
				writable bool
			}{
				{"worker", newState(role.Worker, false), false},
				{"passive manager", newState(role.Manager, false), false},
				{"active manager", newState(role.Manager, true), true},
			} {
				h := &recorder{}
				w := httptest.NewRecorder()
				role.NewGuard(st.s, httpRules()...).HTTP(h).ServeHTTP(w, newReq())
				if want := tc.read || st.writable; (len(h.reached) == 1) != want {
					t.Errorf("%s: reached handler = %v, want %v", st.name, len(h.reached) == 1, want)
				}
				if len(h.reached) == 0 {
					checkProblem(t, w, st.s.role, "")
				}
			}
		})
	}
}

func classifierRules() []role.ClassifierOption {
	var cs []role.ClassifierOption
	for _, o := range httpRules() {
		cs = append(cs, o.(role.ClassifierOption))
	}
	return cs
}

// checkProblem checks an RFC 9457 rejection.
func checkProblem(t *testing.T, w *httptest.ResponseRecorder, r role.Role, active string) {
	t.Helper()
	if w.Code != http.StatusForbidden {
		t.Errorf("status = %d, want 403", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	want := map[string]any{
		"type": role.ProblemType, "title": "Read-only node", "status": float64(403),
		"reason": "READ_ONLY_NODE", "domain": "test.domain", "role": r.String(),
	}
	if active != "" {
		want["active"] = active
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("problem[%q] = %v, want %v", k, p[k], v)
		}
	}
	if d, _ := p["detail"].(string); d == "" {
		t.Error("problem has no detail")
	}
	if _, ok := p["active"]; ok && active == "" {
		t.Errorf("active manager disclosed without WithActiveDisclosure: %v", p["active"])
	}
}

func TestHTTPActiveDisclosure(t *testing.T) {
	h := &recorder{}
	w := httptest.NewRecorder()
	g := role.NewGuard(newState(role.Worker, false), role.WithActiveDisclosure("http"))
	g.HTTP(h).ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/x", nil))
	checkProblem(t, w, role.Worker, "10.0.0.1:8443")
}

func TestHTTPStateChange(t *testing.T) {
	st := newState(role.Manager, false)
	h := &recorder{}
	srv := httptest.NewServer(role.NewGuard(st).HTTP(h))
	defer srv.Close()
	post := func() int {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+"/x", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for i, tc := range []struct {
		writable bool
		code     int
	}{{false, 403}, {true, 200}, {false, 403}, {true, 200}} {
		st.writable.Store(tc.writable)
		if got := post(); got != tc.code {
			t.Errorf("step %d (writable %v): status %d, want %d", i, tc.writable, got, tc.code)
		}
	}
	if len(h.reached) != 2 {
		t.Errorf("handler reached %d times, want 2", len(h.reached))
	}
	srv.Client().CloseIdleConnections()
}

func TestManagerOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    role.State
		code int
	}{
		{"worker", role.Static(role.Worker), 404},
		{"observer", role.Static(role.None), 404},
		{"passive manager", newState(role.Manager, false), 200},
		{"active manager", newState(role.Manager, true), 200},
	} {
		w := httptest.NewRecorder()
		role.ManagerOnly(tc.s, &recorder{}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/console", nil))
		if w.Code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.name, w.Code, tc.code)
		}
	}
}
