package lb

import (
	"context"
	"time"

	"google.golang.org/grpc"
	// The role Classifier reads method options (idempotency_level), which
	// protobuf can only decode with descriptorpb linked in.
	_ "google.golang.org/protobuf/types/descriptorpb"

	"github.com/carbonkit/carbon/role"
)

// Classifier tells reads from writes by gRPC full method name.
// *role.Classifier implements it.
type Classifier interface {
	IsRead(fullMethod string) bool
}

// RouterOption configures NewRouter.
type RouterOption func(*router)

// WithClassifier sets the classifier; share the one of the servers' role
// Guard so that both agree on what a write is. Default
// role.NewClassifier().
func WithClassifier(c Classifier) RouterOption {
	return func(r *router) {
		if c != nil {
			r.cls = c
		}
	}
}

// WithFailoverWait bounds how long a write rejected as read-only waits for
// the writes connection to move to another manager before its one retry.
// Default 5 s; the call's own deadline applies too.
func WithFailoverWait(d time.Duration) RouterOption {
	return func(r *router) { r.wait = d }
}

// NewRouter returns a connection that sends each gRPC method to reads or to
// writes, as the classifier tells reads from writes: reads to the workers,
// writes to the active manager, typically Dial(n, "worker") and
// Dial(n, "mgt", WithPolicy(ActiveFirst)).
//
// A unary write that a manager rejects as read-only (role.IsReadOnly: it
// was picked from a view that had not seen a fail-over yet) is retried once:
// when writes comes from Dial with ActiveFirst, after its picker has moved
// to another manager (at most the WithFailoverWait time); otherwise at once.
// Streams are routed but never retried.
func NewRouter(reads, writes grpc.ClientConnInterface, opts ...RouterOption) grpc.ClientConnInterface {
	r := &router{reads: reads, writes: writes, wait: 5 * time.Second}
	for _, f := range opts {
		if f != nil {
			f(r)
		}
	}
	if r.cls == nil {
		r.cls = role.NewClassifier()
	}
	return r
}

type router struct {
	reads, writes grpc.ClientConnInterface
	cls           Classifier
	wait          time.Duration
}

func (r *router) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if r.cls.IsRead(method) {
		return r.reads.Invoke(ctx, method, args, reply, opts...)
	}
	note := &pickNote{}
	err := r.writes.Invoke(context.WithValue(ctx, noteCtx{}, note), method, args, reply, opts...)
	if err == nil || !role.IsReadOnly(err) {
		return err
	}
	if note.s != nil {
		wctx, cancel := context.WithTimeout(ctx, r.wait)
		moved := note.s.waitFirstNot(wctx, note.member)
		cancel()
		if !moved {
			return err // still the same manager: retrying there cannot help
		}
	}
	return r.writes.Invoke(ctx, method, args, reply, opts...)
}

func (r *router) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if r.cls.IsRead(method) {
		return r.reads.NewStream(ctx, desc, method, opts...)
	}
	return r.writes.NewStream(ctx, desc, method, opts...)
}
