package lb

import (
	"context"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/carbonkit/carbon/role"
)

// target is where the proxy sends a method.
type target int8

const (
	toNone target = iota // refused: nothing places it
	toReads
	toWrites
)

// placement is the proxy's verdict on a method: where it goes, and whether
// its descriptor says the client sends a single message.
type placement struct {
	to     target
	single bool
}

// placer places methods for the proxy: reads by a role.Classifier (so the
// proxy and the workers' Guard agree on the built-in reads, the read rules
// and idempotency_level), writes by the write rules or a descriptor.
// Verdicts are cached per method, so a call costs a map lookup.
type placer struct {
	reads    *role.Classifier
	writes   selector.Matcher // nil: no write rules
	resolver role.DescriptorResolver
	cache    atomic.Pointer[map[string]placement]
	mu       sync.Mutex // serialises cache stores
}

// maxPlaced bounds the cache: a client that invents method names (the
// proxy sees them all) cannot grow it past this; later names are placed
// on each call.
const maxPlaced = 4096

func newPlacer(cfg proxyConfig) *placer {
	var copts []role.ClassifierOption
	pl := &placer{resolver: protoregistry.GlobalFiles}
	if cfg.resolverSet {
		pl.resolver = cfg.resolver
		copts = append(copts, role.WithDescriptors(cfg.resolver))
	}
	if len(cfg.reads) > 0 {
		copts = append(copts, role.WithReadMethods(cfg.reads...))
	}
	if len(cfg.writes) > 0 {
		pl.writes = role.MethodPatterns(cfg.writes...)
	}
	pl.reads = role.NewClassifier(copts...)
	return pl
}

// place returns the placement of fullMethod ("/pkg.Service/Method").
func (p *placer) place(fullMethod string) placement {
	if m := p.cache.Load(); m != nil {
		if v, ok := (*m)[fullMethod]; ok {
			return v
		}
	}
	v := p.classify(fullMethod)
	p.store(fullMethod, v)
	return v
}

func (p *placer) classify(fullMethod string) placement {
	sm := strings.TrimPrefix(fullMethod, "/")
	i := strings.LastIndexByte(sm, '/')
	if i <= 0 || i == len(sm)-1 {
		return placement{to: toNone}
	}
	service, method := sm[:i], sm[i+1:]
	md := p.descriptor(service, method)
	v := placement{single: md != nil && !md.IsStreamingClient()}
	cm := interceptors.CallMeta{Service: service, Method: method}
	if md != nil {
		cm.Typ = callType(md)
	}
	switch {
	case p.writes != nil && p.writes.Match(context.Background(), cm):
		v.to = toWrites
	case p.reads.IsRead(fullMethod):
		v.to = toReads
	case md != nil:
		v.to = toWrites
	default:
		v.to = toNone
	}
	return v
}

func callType(md protoreflect.MethodDescriptor) interceptors.GRPCType {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return interceptors.BidiStream
	case md.IsStreamingClient():
		return interceptors.ClientStream
	case md.IsStreamingServer():
		return interceptors.ServerStream
	}
	return interceptors.Unary
}

func (p *placer) descriptor(service, method string) protoreflect.MethodDescriptor {
	if p.resolver == nil {
		return nil
	}
	name := protoreflect.FullName(service + "." + method)
	if !name.IsValid() {
		return nil
	}
	d, err := p.resolver.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	md, _ := d.(protoreflect.MethodDescriptor)
	return md
}

func (p *placer) store(k string, v placement) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cache.Load()
	n := 0
	if old != nil {
		n = len(*old)
		if n >= maxPlaced {
			return
		}
	}
	next := make(map[string]placement, n+1)
	if old != nil {
		maps.Copy(next, *old)
	}
	next[k] = v
	p.cache.Store(&next)
}

// unplaced is the status of a call the proxy refuses because nothing says
// whether its method is a read or a write.
func unplaced(method string) error {
	st := status.Newf(codes.Unimplemented,
		"lb: proxy: method %s is neither a known read nor a known write (no descriptor and no rule): add its descriptor (ProxyDescriptors) or a rule (ProxyReadMethods, ProxyWriteMethods)", method)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   "UNPLACED_METHOD",
		Domain:   "carbon.lb",
		Metadata: map[string]string{"method": method},
	}); err == nil {
		st = d
	}
	return st.Err()
}
