package role

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// httpRoute marks requests of one method to matching paths as reads.
type httpRoute struct {
	method  string // "*" for any
	pattern string // a path.Match pattern
}

// WithHTTPReadRule marks requests with the given method to the paths that
// match pattern as reads: a POST search or GraphQL query endpoint, a
// WebSocket ("GET") or CONNECT endpoint that changes nothing. method is an
// HTTP method ("POST"), or "*" for any. pattern is a [path.Match] glob over
// the request's decoded URL path: "/search", "/api/*/query" ("*" never
// crosses a "/"; to cover a subtree, add a rule per depth or use
// [WithHTTPReadMatcher]).
//
// A route rule only applies to a clean path (no "." or ".." segment, no
// "//", no encoded "/" in the raw path), so that a router which resolves
// such paths differently cannot be led to a write handler; unclean paths
// stay default-deny. A request to a ruled path is a read only if every
// method it claims (its own and its method overrides) is a read or is
// allowed by a rule for that path; an upgrade request is a read if a rule
// allows its own method on the path. WithHTTPReadRule panics if pattern
// is malformed or method is empty.
func WithHTTPReadRule(method, pattern string) ClassifierOption {
	if method == "" {
		panic("role: WithHTTPReadRule: empty method")
	}
	if _, err := path.Match(pattern, ""); err != nil {
		panic(fmt.Sprintf("role: bad HTTP path pattern %q: %v", pattern, err))
	}
	return classifierOption(func(c *Classifier) {
		c.routes = append(c.routes, httpRoute{method: method, pattern: pattern})
	})
}

// WithHTTPReadMatcher adds an HTTP rule: a request m matches is a read,
// with no further check (see [HTTPMatcher]).
func WithHTTPReadMatcher(m HTTPMatcher) ClassifierOption {
	return classifierOption(func(c *Classifier) { c.httpMatchers = append(c.httpMatchers, m) })
}

// Method-override header names, lower-cased with "-" for "_" (see
// overrideHeader).
var overrideHeaders = [...]string{"x-http-method-override", "x-http-method", "x-method-override"}

// IsReadRequest reports whether r is a read. It is, default-deny, when an
// [HTTPMatcher] rule matches it, or when all of these hold:
//   - its method is GET, HEAD or OPTIONS (exactly: methods are
//     case-sensitive, and "get" is an unknown method, hence a write), or a
//     route rule allows it ([WithHTTPReadRule]);
//   - every method it claims is a read in the same sense (compared without
//     regard to case): each comma-separated value of every
//     X-HTTP-Method-Override, X-HTTP-Method and X-Method-Override header,
//     and of every _method parameter of the query string (and of r.Form if
//     it was already parsed);
//   - it is not an upgrade (an Upgrade header, or "upgrade" in a
//     Connection header, e.g. WebSocket), unless a route rule allows it.
//
// CONNECT and TRACE are writes like any other method but GET, HEAD and
// OPTIONS. Header names are compared without regard to case and with "_"
// taken for "-", since CGI-style servers behind a proxy fold the two.
//
// The body is never read: a _method field in a form body can only matter
// to a framework that honours it on a POST, and a POST is a write anyway.
//
// IsReadRequest allocates nothing for a request without override headers
// or _method parameters.
func (c *Classifier) IsReadRequest(r *http.Request) bool {
	for _, m := range c.httpMatchers {
		if m.MatchHTTP(r) {
			return true
		}
	}
	pc := &pathCheck{u: r.URL}
	if !c.methodRead(r.Method, false, pc) {
		return false
	}
	upgrade := false
	for k, vs := range r.Header {
		switch {
		case isOverrideHeader(k):
			for _, v := range vs {
				if !c.listRead(v, pc) {
					return false
				}
			}
		case foldHeader(k, "upgrade"):
			upgrade = true
		case foldHeader(k, "connection"):
			for _, v := range vs {
				// Any mention of "upgrade" counts: over-detection only
				// makes a request a write.
				if containsFold(v, "upgrade") {
					upgrade = true
				}
			}
		}
	}
	if upgrade && !c.routeAllows(r.Method, false, pc) {
		return false
	}
	if r.URL != nil && mayClaim(r.URL.RawQuery) && !c.queryRead(r.URL.RawQuery, pc) {
		return false
	}
	for _, v := range r.Form["_method"] {
		if !c.listRead(v, pc) {
			return false
		}
	}
	return true
}

// pathCheck computes, on first use only, whether route rules may apply
// to a request's path.
type pathCheck struct {
	u        *url.URL
	done, ok bool
}

func (pc *pathCheck) get() (string, bool) {
	if !pc.done {
		pc.done = true
		pc.ok = pc.u != nil && cleanPath(pc.u.Path) && !hasEncodedSlash(pc.u.RawPath)
	}
	if !pc.ok {
		return "", false
	}
	return pc.u.Path, true
}

// mayClaim is a fast pre-check: a query without "_" or "%" has no
// _method parameter.
func mayClaim(q string) bool {
	return strings.IndexByte(q, '_') >= 0 || strings.IndexByte(q, '%') >= 0
}

// methodRead reports whether method m, on path p, is a read. fold is set
// for claimed methods, which frameworks upper-case before use.
func (c *Classifier) methodRead(m string, fold bool, pc *pathCheck) bool {
	if fold {
		if asciiEqualFold(m, http.MethodGet) || asciiEqualFold(m, http.MethodHead) || asciiEqualFold(m, http.MethodOptions) {
			return true
		}
	} else if m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions {
		return true
	}
	return c.routeAllows(m, fold, pc)
}

func (c *Classifier) routeAllows(m string, fold bool, pc *pathCheck) bool {
	if len(c.routes) == 0 {
		return false
	}
	p, ok := pc.get()
	if !ok {
		return false
	}
	for _, rt := range c.routes {
		if rt.method != "*" && rt.method != m && !(fold && asciiEqualFold(rt.method, m)) {
			continue
		}
		if ok, _ := path.Match(rt.pattern, p); ok {
			return true
		}
	}
	return false
}

// listRead reports whether every method of the comma-separated list v is
// a read. Empty elements claim nothing.
func (c *Classifier) listRead(v string, pc *pathCheck) bool {
	for v != "" {
		var tok string
		tok, v, _ = strings.Cut(v, ",")
		tok = trimOWS(tok)
		if tok != "" && !c.methodRead(tok, true, pc) {
			return false
		}
	}
	return true
}

// queryRead reports whether every _method parameter of the raw query
// claims reads only. Pairs are split on "&" and ";" (some frameworks
// accept both), names and values are percent-decoded, and names are
// compared without regard to case.
func (c *Classifier) queryRead(q string, pc *pathCheck) bool {
	for q != "" {
		var pair string
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, ""
		}
		k, v, _ := strings.Cut(pair, "=")
		if !unescapedEqualFold(k, "_method") {
			continue
		}
		if !c.escapedListRead(v, pc) {
			return false
		}
	}
	return true
}

// escapedListRead is listRead over a percent-encoded value, decoding into
// a small stack buffer: no method is longer than it, so an element that
// overflows it is not a read.
func (c *Classifier) escapedListRead(v string, pc *pathCheck) bool {
	var buf [32]byte
	n, over := 0, false
	for i := 0; ; {
		end := i >= len(v)
		var b byte
		if !end {
			b, i = unescapeAt(v, i)
		}
		if end || b == ',' {
			tok := trimOWS(string(buf[:n]))
			if over || (tok != "" && !c.methodRead(tok, true, pc)) {
				return false
			}
			if end {
				return true
			}
			n, over = 0, false
			continue
		}
		if n < len(buf) {
			buf[n] = b
			n++
		} else {
			over = true
		}
	}
}

// unescapeAt decodes the byte of query component s at i ("+" is a space,
// "%XX" a byte; a "%" not followed by two hex digits is itself) and
// returns it with the index of the next one.
func unescapeAt(s string, i int) (byte, int) {
	switch s[i] {
	case '+':
		return ' ', i + 1
	case '%':
		if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			return unhex(s[i+1])<<4 | unhex(s[i+2]), i + 3
		}
	}
	return s[i], i + 1
}

// unescapedEqualFold reports whether the percent-encoded query name s
// decodes to t, ignoring ASCII case. t must be ASCII lower case.
func unescapedEqualFold(s, t string) bool {
	j := 0
	for i := 0; i < len(s); {
		var b byte
		b, i = unescapeAt(s, i)
		if j >= len(t) || lower(b) != t[j] {
			return false
		}
		j++
	}
	return j == len(t)
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case '0' <= b && b <= '9':
		return b - '0'
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10
	default:
		return b - 'A' + 10
	}
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// asciiEqualFold is strings.EqualFold for ASCII only: "OPTIONſ" is not
// OPTIONS here, which can only turn a claim into a write.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lower(t[i]) {
			return false
		}
	}
	return true
}

// foldHeader reports whether header name k is t (ASCII lower case, with
// "-"), ignoring case and taking "_" for "-".
func foldHeader(k, t string) bool {
	if len(k) != len(t) {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := lower(k[i])
		if b == '_' {
			b = '-'
		}
		if b != t[i] {
			return false
		}
	}
	return true
}

func isOverrideHeader(k string) bool {
	for _, h := range overrideHeaders {
		if foldHeader(k, h) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains t (ASCII lower case), ignoring
// ASCII case.
func containsFold(s, t string) bool {
	for i := 0; i+len(t) <= len(s); i++ {
		if asciiEqualFold(s[i:i+len(t)], t) {
			return true
		}
	}
	return false
}

// trimOWS trims HTTP optional white space (spaces and tabs).
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// cleanPath reports whether p is an absolute path in canonical form, or
// one with a single trailing "/" (ServeMux's subtree form), or "*".
func cleanPath(p string) bool {
	if p == "*" {
		return true
	}
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p) // allocates only when p is not clean
	return c == p || c != "/" && len(p) == len(c)+1 && p[len(p)-1] == '/' && p[:len(c)] == c
}

func hasEncodedSlash(raw string) bool {
	return containsFold(raw, "%2f")
}
