package role

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrReadOnly is the error every rejection of a write wraps: test for it
// with errors.Is on the server side, and with [IsReadOnly] on a gRPC
// client, which only sees the status.
var ErrReadOnly = errors.New("role: read-only node")

const (
	// ReasonReadOnly is the ErrorInfo reason of a rejected gRPC write, and
	// the "reason" member of a rejected HTTP write's problem document.
	ReasonReadOnly = "READ_ONLY_NODE"
	// ErrorDomain is the ErrorInfo domain of a rejected gRPC write: the
	// logical service that defines [ReasonReadOnly] (this SDK), not the
	// cluster domain, which travels in the "domain" metadata entry.
	ErrorDomain = "carbon.carbonkit.dev"
	// ProblemType is the RFC 9457 "type" of a rejected HTTP write. It
	// identifies the problem; it is not meant to be fetched.
	ProblemType = "https://carbon.carbonkit.dev/problems/read-only-node"
)

// ReadOnlyError describes a write a read-only node rejected. It wraps
// [ErrReadOnly], and as a gRPC handler's error it becomes the same status
// the [Guard]'s interceptors send (see [ReadOnlyError.GRPCStatus]).
type ReadOnlyError struct {
	// Role is the role of the node that rejected the write.
	Role Role
	// Domain is the node's cluster domain, if its State reports one
	// ([DomainReporter]).
	Domain string
	// Active is the address of the active manager's endpoint, set only
	// when the Guard discloses it ([WithActiveDisclosure]).
	Active string
	// Method is the rejected gRPC method or "HTTP-METHOD /path", when
	// known. It is not sent to clients (they know what they called).
	Method string
}

// Error names the role, the domain and the method.
func (e *ReadOnlyError) Error() string {
	msg := ErrReadOnly.Error() + ": " + e.Role.String()
	if e.Domain != "" {
		msg += fmt.Sprintf(" of domain %q", e.Domain)
	}
	msg += " rejects writes"
	if e.Method != "" {
		msg += fmt.Sprintf(" (%s)", e.Method)
	}
	if e.Active != "" {
		msg += "; active manager at " + e.Active
	}
	return msg
}

// Unwrap returns [ErrReadOnly].
func (e *ReadOnlyError) Unwrap() error { return ErrReadOnly }

// GRPCStatus returns the status of a rejected write: FailedPrecondition
// (the call is valid but the node is not in a state to perform it; retrying
// on the same node will not help, retrying on the active manager will),
// with an [errdetails.ErrorInfo] detail whose Reason is [ReasonReadOnly],
// Domain [ErrorDomain], and Metadata "domain" (the cluster domain), "role"
// and, when disclosed, "active".
func (e *ReadOnlyError) GRPCStatus() *status.Status {
	md := map[string]string{"domain": e.Domain, "role": e.Role.String()}
	if e.Active != "" {
		md["active"] = e.Active
	}
	s := status.New(codes.FailedPrecondition, e.Error())
	if d, err := s.WithDetails(&errdetails.ErrorInfo{Reason: ReasonReadOnly, Domain: ErrorDomain, Metadata: md}); err == nil {
		s = d
	}
	return s
}

// IsReadOnly reports whether err is a rejected write: an error wrapping
// [ErrReadOnly], or a gRPC status carrying the ErrorInfo the [Guard] sends.
func IsReadOnly(err error) bool {
	_, ok := AsReadOnly(err)
	return ok
}

// AsReadOnly returns the [ReadOnlyError] err describes: the one it wraps,
// or one rebuilt from the ErrorInfo of a gRPC status, so that a client
// learns the node's role, its domain and, if disclosed, where the active
// manager is. A bare [ErrReadOnly] gives a ReadOnlyError with no fields.
func AsReadOnly(err error) (*ReadOnlyError, bool) {
	if err == nil {
		return nil, false
	}
	if e, ok := errors.AsType[*ReadOnlyError](err); ok {
		return e, true
	}
	if errors.Is(err, ErrReadOnly) {
		return &ReadOnlyError{}, true
	}
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.FailedPrecondition {
		return nil, false
	}
	for _, d := range s.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetReason() != ReasonReadOnly || info.GetDomain() != ErrorDomain {
			continue
		}
		md := info.GetMetadata()
		r := Role(md["role"])
		if r == "observer" {
			r = None
		}
		return &ReadOnlyError{Role: r, Domain: md["domain"], Active: md["active"]}, true
	}
	return nil, false
}
