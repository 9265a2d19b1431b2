package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/carbonkit/carbon/lb"
	"github.com/carbonkit/carbon/role"
)

// errUpstreamTimeout is the cause of a call the gateway cut because its
// upstream had not answered within the upstream timeout.
var errUpstreamTimeout = errors.New("gateway: upstream did not answer in time")

// errNoWriter is what a read-only refusal from a writer route becomes: no
// manager is writable right now (a fail-over in progress, most likely).
var errNoWriter = errors.New("gateway: no writable manager")

// upstreamPolicy is what the gateway adds to the calls it forwards: a
// deadline on the upstream's first answer, and one answer, 503 with
// Retry-After (gRPC Unavailable with a RetryInfo), for every way an
// upstream can be unavailable: no routable member, no answer in time, a
// failed connection, or a stand-by manager's read-only refusal on a route
// meant to reach the active one. Clients can tell "try again shortly"
// from a real refusal, instead of a mix of 403 and 502 during a fail-over.
type upstreamPolicy struct {
	timeout     time.Duration // <= 0: none
	retryAfter  time.Duration
	writerRoute bool // the gRPC writes go to a route meant to reach the active manager
}

// watch starts the upstream deadline on ctx: the returned context ends
// with cause errUpstreamTimeout unless answered is called first. done
// releases it.
func (u upstreamPolicy) watch(parent context.Context) (ctx context.Context, answered func(), done func()) {
	ctx, cancel := context.WithCancelCause(parent)
	if u.timeout <= 0 {
		return ctx, func() {}, func() { cancel(nil) }
	}
	t := time.AfterFunc(u.timeout, func() { cancel(errUpstreamTimeout) })
	return ctx, func() { t.Stop() }, func() { t.Stop(); cancel(nil) }
}

// grpc is the stream interceptor around the proxy (grpc-go runs stream
// interceptors around an UnknownServiceHandler too).
func (u upstreamPolicy) grpc(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, answered, done := u.watch(ss.Context())
	defer done()
	err := h(srv, &answerStream{ServerStream: ss, ctx: ctx, answered: answered})
	return u.grpcStatus(ss.Context(), ctx, err)
}

// grpcStatus maps what the proxy returned: the client's own cancellation
// and deadline, and every status but the unavailable ones, pass unchanged.
func (u upstreamPolicy) grpcStatus(client, ctx context.Context, err error) error {
	if err == nil || client.Err() != nil {
		return err
	}
	if errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		return u.unavailable(fmt.Sprintf("gateway: the upstream did not answer within %v", u.timeout), nil)
	}
	st := status.Convert(err)
	switch {
	case st.Code() == codes.Unavailable:
		for _, d := range st.Details() {
			if _, ok := d.(*errdetails.RetryInfo); ok {
				return err
			}
		}
		return u.unavailable(st.Message(), st.Proto().GetDetails())
	case u.writerRoute && role.IsReadOnly(err):
		return u.unavailable("gateway: no writable manager right now (a fail-over may be in progress): "+st.Message(), st.Proto().GetDetails())
	}
	return err
}

// unavailable is an Unavailable status with a RetryInfo, keeping the
// details of the status it replaces.
func (u upstreamPolicy) unavailable(msg string, keep []*anypb.Any) error {
	p := status.New(codes.Unavailable, msg).Proto()
	p.Details = append(p.Details, keep...)
	st := status.FromProto(p)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(u.retryAfter)}); err == nil {
		st = d
	}
	return st.Err()
}

// answerStream is the server stream the proxy sees: its context carries
// the upstream deadline, and the first headers or message the proxy
// forwards to the client stop it.
type answerStream struct {
	grpc.ServerStream
	ctx      context.Context
	once     sync.Once
	answered func()
}

func (s *answerStream) Context() context.Context { return s.ctx }

func (s *answerStream) SendHeader(md metadata.MD) error {
	s.once.Do(s.answered)
	return s.ServerStream.SendHeader(md)
}

func (s *answerStream) SendMsg(m any) error {
	s.once.Do(s.answered)
	return s.ServerStream.SendMsg(m)
}

type answeredKey struct{}

// http sets p up for the policy and returns the handler that serves it:
// the deadline runs until the response headers arrive; writer says the
// route is meant to reach the active manager.
func (u upstreamPolicy) http(p *httputil.ReverseProxy, writer bool) http.Handler {
	p.ModifyResponse = func(resp *http.Response) error {
		if f, ok := resp.Request.Context().Value(answeredKey{}).(func()); ok {
			f()
		}
		if writer && readOnlyRefusal(resp) {
			return errNoWriter
		}
		return nil
	}
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() != nil && !errors.Is(context.Cause(r.Context()), errUpstreamTimeout) {
			return // the client went away: nobody to answer
		}
		msg := "the upstream is unavailable"
		switch {
		case errors.Is(context.Cause(r.Context()), errUpstreamTimeout):
			msg = fmt.Sprintf("the upstream did not answer within %v", u.timeout)
		case errors.Is(err, errNoWriter):
			msg = "no writable manager right now (a fail-over may be in progress)"
		case errors.Is(err, lb.ErrNoMembers):
			msg = "no routable member"
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((u.retryAfter+time.Second-1)/time.Second))))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "gateway: "+msg+"; retry shortly\n")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, answered, done := u.watch(r.Context())
		defer done()
		p.ServeHTTP(w, r.WithContext(context.WithValue(ctx, answeredKey{}, answered)))
	})
}

// readOnlyRefusal reports whether resp is the role Guard's 403 for a
// write sent to a read-only node (its problem document names
// role.ProblemType). It reads at most a few KiB of the body and puts them
// back.
func readOnlyRefusal(resp *http.Response) bool {
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		return false
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	return bytes.Contains(head, []byte(role.ProblemType))
}

type readCloser struct {
	io.Reader
	io.Closer
}
