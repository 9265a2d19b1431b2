package role

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/trust"
)

// ReasonWriterNotAuthorized is the reason of a write refused by
// [RequireWriterIdentity].
const ReasonWriterNotAuthorized = "WRITER_NOT_AUTHORIZED"

// writerRule is the second line behind the role check: who may send a
// write at all.
type writerRule struct {
	domain string
	roles  []string
}

// RequireWriterIdentity adds a second line behind the role check: a write
// is served only when the caller authenticated over mutual TLS (built
// with package trust) with a certificate of domain naming one of roles
// (trust.RoleManager when none is given). Others get gRPC PermissionDenied
// or HTTP 403 with reason [ReasonWriterNotAuthorized], even on the active
// manager. Reads are not checked and cost nothing more. The rule applies
// to the interceptors and the HTTP middleware; [Guard.CheckWrite] checks
// it too when its context carries a gRPC peer.
func RequireWriterIdentity(domain string, roles ...string) GuardOption {
	if len(roles) == 0 {
		roles = []string{trust.RoleManager}
	}
	r := &writerRule{domain: domain, roles: slices.Clone(roles)}
	return guardOption(func(g *guardConfig) { g.writer = r })
}

// check returns why the peer of a connection may not write, or nil.
func (w *writerRule) check(cs *tls.ConnectionState) error {
	if cs == nil {
		return fmt.Errorf("writes need a mutual-TLS client certificate of domain %q with role %v", w.domain, w.roles)
	}
	id, err := trust.PeerIdentity(cs)
	if err != nil {
		return err
	}
	if id.Domain != w.domain || !slices.Contains(w.roles, id.Role) {
		return fmt.Errorf("writes need a client certificate of domain %q with role %v, the caller is %s", w.domain, w.roles, id)
	}
	return nil
}

// checkGRPC applies the rule to the peer of a gRPC call.
func (w *writerRule) checkGRPC(ctx context.Context) error {
	var cs *tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			cs = &info.State
		}
	}
	if err := w.check(cs); err != nil {
		return status.Error(codes.PermissionDenied, "role: write refused: "+err.Error())
	}
	return nil
}

// checkHTTP applies the rule to an HTTP request and answers 403 when it
// fails; it reports whether the request may go on.
func (g *Guard) checkWriterHTTP(w http.ResponseWriter, r *http.Request) bool {
	err := g.writer.check(r.TLS)
	if err == nil {
		return true
	}
	body, _ := json.Marshal(problem{
		Type: ProblemType, Title: "Writer not authorized", Status: http.StatusForbidden,
		Detail: err.Error(), Reason: ReasonWriterNotAuthorized, Domain: g.writer.domain,
		Role: g.state.Role().String(),
	})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(body)
	return false
}
