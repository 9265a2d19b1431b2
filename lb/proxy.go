package lb

import (
	"context"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/role"
)

// Proxy is a transparent gRPC proxy: it forwards calls to any service,
// without knowing its messages, to a reads or a writes connection. Build it
// with [NewProxy] and serve it with [Proxy.ServerOptions].
//
// What it passes through unchanged: the request and response messages
// (their encoded bytes, never parsed or copied), the request metadata but
// for the headers grpc-go sets itself (:authority, content-type,
// user-agent, grpc-timeout, te), the response headers and trailers, and
// the status (code, message and details, so the role Guard's ErrorInfo
// reaches the client). The client's deadline and cancellation reach the
// upstream call, whose context is the server stream's.
//
// Back-pressure is kept: each direction forwards one message at a time
// and receives the next only once the previous one was handed to the
// other side's flow control, so a slow reader stalls the upstream sender
// instead of filling the proxy's memory.
//
// Each hop has its own limits and compression: a message over grpc-go's
// default 4 MiB needs grpc.MaxRecvMsgSize on the proxy's server and
// grpc.MaxCallRecvMsgSize on its connections, and a compressed message
// arrives decompressed and goes on as the upstream connection is set to
// send (uncompressed by default).
//
// Its own code allocates nothing per call. What grpc-go forces on a
// forwarded call is a second hop: a server stream, a client stream, the
// copy of the request metadata (metadata.FromIncomingContext copies the
// map) and, for client-streaming and bidi calls or methods without a
// descriptor, one goroutine for the client-to-upstream direction. See
// BenchmarkProxy and docs/PERFORMANCE.md for the figures.
//
// A Proxy is safe for concurrent use.
type Proxy struct {
	reads, writes grpc.ClientConnInterface
	same          bool // reads and writes are one connection: nothing to place
	places        *placer
	retryReads    bool
	codec         rawCodec
	callOpts      []grpc.CallOption
}

// ProxyOption configures [NewProxy].
type ProxyOption func(*proxyConfig)

// ProxyReadMethods marks the methods that match the patterns (as
// [role.MethodPatterns]: "/pkg.Svc/Get*") as reads, for services whose
// descriptors the proxy does not have.
func ProxyReadMethods(patterns ...string) ProxyOption {
	return func(c *proxyConfig) { c.reads = append(c.reads, patterns...) }
}

// ProxyWriteMethods marks the methods that match the patterns as writes.
// A write rule beats a read rule and a descriptor: it is how a method
// annotated NO_SIDE_EFFECTS that should still reach the managers is
// overridden.
func ProxyWriteMethods(patterns ...string) ProxyOption {
	return func(c *proxyConfig) { c.writes = append(c.writes, patterns...) }
}

// ProxyDescriptors sets where the proxy finds method descriptors. A
// method with a descriptor is a read if it declares
// option idempotency_level = NO_SIDE_EFFECTS and a write otherwise. Default
// protoregistry.GlobalFiles (every generated .pb.go linked into the
// program); nil leaves only the rules and the built-in read services.
func ProxyDescriptors(r role.DescriptorResolver) ProxyOption {
	return func(c *proxyConfig) { c.resolver, c.resolverSet = r, true }
}

// ProxyRetryReads makes the proxy send a read once more, through a new
// pick of the reads connection's balancer, when its first attempt fails
// with Unavailable before anything of the response arrived (no headers:
// a failed connection, no routable member, a trailers-only Unavailable
// status, as a grpc-go handler that fails before it sends anything
// returns). Only
// reads whose descriptor says the client sends one message (unary and
// server-streaming) are retried, since the proxy then holds that one
// message and nothing more; writes are never retried. Default off.
func ProxyRetryReads() ProxyOption {
	return func(c *proxyConfig) { c.retryReads = true }
}

type proxyConfig struct {
	reads, writes []string
	resolver      role.DescriptorResolver
	resolverSet   bool
	retryReads    bool
}

// NewProxy returns a Proxy that sends reads to reads and writes to writes,
// typically Dial(n, "worker") and Dial(n, "mgt", WithPolicy(ActiveFirst)).
//
// A method is placed, once and then from a cache, by these rules in order:
// a [ProxyWriteMethods] rule makes it a write; the built-in read services
// (health, reflection, channelz) and [ProxyReadMethods] rules make it a
// read; its descriptor ([ProxyDescriptors]) makes it a read when it
// declares NO_SIDE_EFFECTS and a write otherwise. A method none of these
// place is refused with Unimplemented and an ErrorInfo (reason
// "UNPLACED_METHOD", domain "carbon.lb", metadata "method"): the proxy
// never guesses where a call goes. When reads and writes are the same
// connection, every method goes to it and none is refused.
func NewProxy(reads, writes grpc.ClientConnInterface, opts ...ProxyOption) *Proxy {
	var cfg proxyConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	p := &Proxy{reads: reads, writes: writes, same: sameConn(reads, writes), retryReads: cfg.retryReads, codec: newRawCodec()}
	p.places = newPlacer(cfg)
	p.callOpts = []grpc.CallOption{grpc.ForceCodecV2(p.codec)}
	return p
}

// ServerOptions returns the options that make a grpc.Server forward every
// call to a service it has not registered through p: an
// UnknownServiceHandler, the proxy's codec, and a pool of stream workers.
// The codec passes the proxy's frames through and encodes every other
// message with grpc-go's proto codec, so services registered on the same
// server (health, the gateway's own) keep working.
//
// The workers (grpc.NumStreamWorkers, 4 per GOMAXPROCS at the time of the
// call) run calls on goroutines whose stacks have already grown: without
// them grpc-go starts a goroutine per call, and growing its stack to what
// a forwarded call needs was a tenth of the proxy's CPU time in the unary
// benchmark. A call that finds every worker busy (long streams hold one
// for their whole life) gets its own goroutine, as without the pool. An
// option given after these (grpc.NumStreamWorkers(0)) overrides them.
// grpc-go marks NumStreamWorkers experimental: should it change, only this
// speed-up is at stake, not what the proxy forwards.
func (p *Proxy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.UnknownServiceHandler(p.handle),
		grpc.ForceServerCodecV2(p.codec),
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
	}
}

// Both kinds of upstream stream. Unary and server-streaming calls known by
// their descriptor use single, so their one request goes with END_STREAM
// and no goroutine pumps the client side.
var (
	singleDesc = grpc.StreamDesc{StreamName: "proxy", ServerStreams: true}
	streamDesc = grpc.StreamDesc{StreamName: "proxy", ServerStreams: true, ClientStreams: true}
)

func (p *Proxy) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "lb: proxy: stream without a method name")
	}
	pl := p.places.place(method)
	cc := p.reads
	switch {
	case p.same:
		// One connection: nothing to choose, nothing to refuse; the
		// placement still tells reads (which may be retried) apart.
	case pl.to == toWrites:
		cc = p.writes
	case pl.to == toNone:
		return unplaced(method)
	}
	if cc == nil {
		return status.Errorf(codes.Internal, "lb: proxy: NewProxy was given a nil connection for %s", method)
	}
	ctx := ss.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	ctx = metadata.NewOutgoingContext(ctx, md)
	opts := p.callOpts
	if sub := contentSubtype(md); sub != "" {
		opts = append(opts[:len(opts):len(opts)], grpc.CallContentSubtype(sub))
	}
	if pl.single {
		return p.forwardSingle(ctx, cc, ss, method, opts, p.retryReads && pl.to == toReads)
	}
	return forwardStream(ctx, cc, ss, method, opts)
}

// forwardSingle forwards a call whose client sends one message: that
// message, then the responses. With retry it keeps a reference to the
// request until the call ends, to send it again once.
func (p *Proxy) forwardSingle(ctx context.Context, cc grpc.ClientConnInterface, ss grpc.ServerStream, method string, opts []grpc.CallOption, retry bool) error {
	f := getFrame()
	defer putFrame(f)
	if err := ss.RecvMsg(f); err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.Internal, "lb: proxy: the client sent no request message")
		}
		return err
	}
	var req mem.BufferSlice
	if retry {
		req = f.data
		f.data = nil
		defer req.Free()
	}
	for attempt := 0; ; attempt++ {
		if retry {
			req.Ref()
			f.data = req
		}
		cs, err := cc.NewStream(ctx, &singleDesc, method, opts...)
		if err != nil {
			f.free()
			if retry && attempt == 0 && status.Code(err) == codes.Unavailable && ctx.Err() == nil {
				continue
			}
			return err
		}
		// A failed send of a non-client-streaming call returns nil, and
		// the upstream's status comes from RecvMsg, in pumpDown.
		err = cs.SendMsg(f)
		f.free()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		sent, err := pumpDown(cs, ss, f)
		if retry && attempt == 0 && !sent && status.Code(err) == codes.Unavailable && ctx.Err() == nil {
			continue
		}
		ss.SetTrailer(cs.Trailer())
		return err
	}
}

// forwardStream forwards a call of any kind: a goroutine pumps the client's
// messages up while this one pumps the responses down. The call ends when
// the upstream ends; the goroutine then ends with the server stream, whose
// context grpc-go cancels once the handler has returned.
func forwardStream(ctx context.Context, cc grpc.ClientConnInterface, ss grpc.ServerStream, method string, opts []grpc.CallOption) error {
	cs, err := cc.NewStream(ctx, &streamDesc, method, opts...)
	if err != nil {
		return err
	}
	go pumpUp(ss, cs)
	f := getFrame()
	defer putFrame(f)
	_, err = pumpDown(cs, ss, f)
	ss.SetTrailer(cs.Trailer())
	return err
}

// pumpUp forwards the client's messages to the upstream, then its
// half-close. An error of the client (it cancelled, went away) cancels the
// upstream through the context; an error of the upstream's send side ends
// this pump, and pumpDown reports the upstream's status.
func pumpUp(ss grpc.ServerStream, cs grpc.ClientStream) {
	f := getFrame()
	defer putFrame(f)
	for {
		if err := ss.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				_ = cs.CloseSend()
			}
			return
		}
		err := cs.SendMsg(f)
		f.free()
		if err != nil {
			return
		}
	}
}

// pumpDown forwards the upstream's headers and messages to the client and
// returns the upstream's status; the caller forwards the trailers. sent
// reports whether anything reached the client (headers or a message),
// after which a call is not retried.
func pumpDown(cs grpc.ClientStream, ss grpc.ServerStream, f *frame) (sent bool, err error) {
	hdr, err := cs.Header()
	if err != nil {
		return false, err
	}
	if hdr != nil { // nil: a trailers-only response, which stays one
		if err := ss.SendHeader(hdr); err != nil {
			return true, err
		}
		sent = true
	}
	for {
		if err := cs.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				return sent, nil
			}
			return sent, err
		}
		err := ss.SendMsg(f)
		f.free()
		sent = true
		if err != nil {
			return true, err
		}
	}
}

// sameConn reports whether a and b are one connection; a connection type
// that cannot be compared (a struct value holding a slice) is never the
// same, rather than a panic.
func sameConn(a, b grpc.ClientConnInterface) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// contentSubtype returns the request's content-subtype when it is not
// proto (the codec's own name, sent by default), so that a call in another
// encoding goes upstream under its own name.
func contentSubtype(md metadata.MD) string {
	ct := md["content-type"]
	if len(ct) == 0 {
		return ""
	}
	sub, ok := strings.CutPrefix(ct[0], "application/grpc")
	if !ok || sub == "" {
		return ""
	}
	sub = strings.TrimLeft(sub, "+;")
	if sub == "" || strings.EqualFold(sub, "proto") {
		return ""
	}
	return strings.ToLower(sub)
}
