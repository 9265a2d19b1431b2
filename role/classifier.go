package role

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	// Reading a method's idempotency_level needs the descriptor package
	// linked in, or MethodDescriptor.Options panics.
	_ "google.golang.org/protobuf/types/descriptorpb"
)

// Classifier tells reads from writes, for gRPC methods and HTTP requests,
// default-deny: anything it cannot prove to be a read is a write. The
// [Guard] uses one to decide what a read-only node may serve, and a
// client-side router can use the same one to send writes to the active
// manager.
//
// A gRPC method is a read when one of these holds, in this order:
//   - it belongs to a built-in read service: health (grpc.health.v1.Health),
//     reflection (any grpc.reflection.* service) or channelz
//     (grpc.channelz.v1.Channelz);
//   - a rule added with [WithReadRule] or [WithReadMethods] matches it;
//   - its descriptor, found through [WithDescriptors] (default
//     protoregistry.GlobalFiles), declares
//     option idempotency_level = NO_SIDE_EFFECTS.
//
// Everything else is a write: unknown methods, methods without a
// descriptor, methods declared IDEMPOTENT (idempotent is not free of side
// effects), malformed names.
//
// The verdict for a gRPC method is computed on the first call and cached
// (up to a few thousand methods), so [Classifier.IsRead] costs a map lookup
// and allocates nothing. HTTP requests are classified on every call, see
// [Classifier.IsReadRequest].
//
// A Classifier is safe for concurrent use.
type Classifier struct {
	rules        []selector.Matcher
	resolver     DescriptorResolver
	routes       []httpRoute
	httpMatchers []HTTPMatcher
	cache        cowMap[string, bool]
}

// DescriptorResolver finds protobuf descriptors by full name.
// *protoregistry.Files implements it.
type DescriptorResolver interface {
	FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error)
}

// HTTPMatcher is a rule over HTTP requests, as [selector.Matcher] is over
// gRPC calls. A request it matches is a read, whatever its method, the
// methods it claims and its upgrade headers: the rule's author vouches for
// it. MatchHTTP is called on every request, from many goroutines at once;
// it must not read the body.
type HTTPMatcher interface {
	MatchHTTP(r *http.Request) bool
}

// HTTPMatchFunc adapts a function to an [HTTPMatcher].
type HTTPMatchFunc func(r *http.Request) bool

// MatchHTTP returns f(r).
func (f HTTPMatchFunc) MatchHTTP(r *http.Request) bool { return f(r) }

// ClassifierOption configures a [Classifier]. Every ClassifierOption is
// also a [GuardOption]: passed to [NewGuard], it adds its rule to the
// Guard's own Classifier.
type ClassifierOption interface {
	GuardOption
	applyClassifier(*Classifier)
}

type classifierOption func(*Classifier)

func (o classifierOption) applyClassifier(c *Classifier) { o(c) }
func (o classifierOption) applyGuard(g *guardConfig)     { g.rules = append(g.rules, o) }

// WithReadRule adds a rule: a gRPC method m matches is a read. Because
// verdicts are cached per method, m is asked once per method, with
// context.Background() and an [interceptors.CallMeta] that has Service and
// Method set, Typ set when the method's descriptor is known (empty
// otherwise), no request and IsClient false: m must decide from the method
// alone. Rules compose with the [selector] package's own matchers and
// [selector.MatchFunc].
func WithReadRule(m selector.Matcher) ClassifierOption {
	return classifierOption(func(c *Classifier) { c.rules = append(c.rules, m) })
}

// WithReadMethods is WithReadRule([MethodPatterns](patterns...)).
func WithReadMethods(patterns ...string) ClassifierOption {
	return WithReadRule(MethodPatterns(patterns...))
}

// MethodPatterns returns a [selector.Matcher] of the gRPC methods whose
// full name ("/pkg.Service/Method") matches one of the [path.Match]
// patterns: "/pkg.Svc/Get*" matches Get and GetUser, "/pkg.Svc/*" the whole
// service, "/pkg.*/List*" every List method of every service of pkg; a "*"
// never crosses a "/". It panics if a pattern is malformed, as
// regexp.MustCompile does: patterns are fixed at build time.
func MethodPatterns(patterns ...string) selector.Matcher {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			panic(fmt.Sprintf("role: bad method pattern %q: %v", p, err))
		}
	}
	patterns = append([]string(nil), patterns...)
	return selector.MatchFunc(func(_ context.Context, cm interceptors.CallMeta) bool {
		full := "/" + cm.Service + "/" + cm.Method
		for _, p := range patterns {
			if ok, _ := path.Match(p, full); ok {
				return true
			}
		}
		return false
	})
}

// WithDescriptors sets where the Classifier looks up method descriptors
// for their idempotency_level; the default is protoregistry.GlobalFiles,
// which holds every generated .pb.go linked into the program. nil turns
// the look-up off, leaving only the rules and the built-in services.
// Descriptors are looked up once per method, on its first call.
func WithDescriptors(r DescriptorResolver) ClassifierOption {
	return classifierOption(func(c *Classifier) {
		c.resolver = r
		if r == nil {
			c.resolver = noResolver{}
		}
	})
}

type noResolver struct{}

func (noResolver) FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error) {
	return nil, protoregistry.NotFound
}

// NewClassifier returns a Classifier with the built-in read services and
// the given rules.
func NewClassifier(opts ...ClassifierOption) *Classifier {
	c := &Classifier{}
	for _, o := range opts {
		o.applyClassifier(c)
	}
	if c.resolver == nil {
		c.resolver = protoregistry.GlobalFiles
	}
	return c
}

// IsRead reports whether the gRPC method fullMethod ("/pkg.Service/Method",
// as in grpc.UnaryServerInfo.FullMethod) is a read. It allocates nothing
// once the method has been seen.
func (c *Classifier) IsRead(fullMethod string) bool {
	if v, ok := c.cache.load(fullMethod); ok {
		return v
	}
	v := c.classify(fullMethod)
	c.cache.store(fullMethod, v)
	return v
}

// classify is the uncached verdict. It splits the name as grpc-go's server
// routes it (an optional leading "/", then service and method around the
// last "/"), so that the verdict is about the handler that will run.
func (c *Classifier) classify(fullMethod string) bool {
	sm := strings.TrimPrefix(fullMethod, "/")
	i := strings.LastIndexByte(sm, '/')
	if i <= 0 || i == len(sm)-1 {
		return false
	}
	service, method := sm[:i], sm[i+1:]
	if builtinRead(service) {
		return true
	}
	md := c.descriptor(service, method)
	if len(c.rules) > 0 {
		cm := interceptors.CallMeta{Service: service, Method: method}
		if md != nil {
			switch {
			case md.IsStreamingClient() && md.IsStreamingServer():
				cm.Typ = interceptors.BidiStream
			case md.IsStreamingClient():
				cm.Typ = interceptors.ClientStream
			case md.IsStreamingServer():
				cm.Typ = interceptors.ServerStream
			default:
				cm.Typ = interceptors.Unary
			}
		}
		for _, r := range c.rules {
			if r.Match(context.Background(), cm) {
				return true
			}
		}
	}
	return md != nil && noSideEffects(md)
}

func builtinRead(service string) bool {
	return service == "grpc.health.v1.Health" ||
		service == "grpc.channelz.v1.Channelz" ||
		strings.HasPrefix(service, "grpc.reflection.")
}

func (c *Classifier) descriptor(service, method string) protoreflect.MethodDescriptor {
	name := protoreflect.FullName(service + "." + method)
	if !name.IsValid() {
		return nil
	}
	d, err := c.resolver.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	md, _ := d.(protoreflect.MethodDescriptor)
	return md
}

// noSideEffects reads MethodOptions.idempotency_level reflectively, so it
// works for descriptors built at run time (protodesc, dynamicpb) as well as
// for generated ones.
func noSideEffects(md protoreflect.MethodDescriptor) bool {
	opts := md.Options()
	if opts == nil {
		return false
	}
	m := opts.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("idempotency_level")
	if fd == nil || fd.Kind() != protoreflect.EnumKind || !m.Has(fd) {
		return false
	}
	const noSideEffects = 1 // descriptorpb.MethodOptions_NO_SIDE_EFFECTS
	return m.Get(fd).Enum() == noSideEffects
}
