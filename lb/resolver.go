package lb

import (
	"context"
	"sync"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/carbonkit/carbon/cluster"
)

// Scheme is the URL scheme of the resolvers Dial builds. Each Dial passes
// its own resolver with grpc.WithResolvers, so the scheme is never
// registered globally and two Nodes in one process never collide.
const Scheme = "carbon"

// stateKey and memberKey are the attribute keys of our resolver updates.
type (
	stateKey  struct{}
	memberKey struct{}
)

// memberAttr is the member behind an endpoint.
type memberAttr struct {
	name   string
	weight float64
	rank   int
	since  int64
}

// Equal lets grpc compare endpoint attributes.
func (m memberAttr) Equal(o any) bool { x, ok := o.(memberAttr); return ok && x == m }

func memberOf(e resolver.Endpoint) (memberAttr, bool) {
	m, ok := e.Attributes.Value(memberKey{}).(memberAttr)
	return m, ok
}

// resolverBuilder builds the resolver of one Dial.
type resolverBuilder struct {
	n *cluster.Node
	s *state
}

func (b *resolverBuilder) Scheme() string { return Scheme }

func (b *resolverBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &viewResolver{s: b.s, cancel: cancel, unregister: b.s.registerMetrics()}
	views := b.n.Watch(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		var last []peer
		for v := range views {
			ps := b.s.peers(v)
			if last != nil && samePeers(last, ps) {
				continue
			}
			last = ps
			_ = cc.UpdateState(b.s.resolverState(ps))
		}
	}()
	return r, nil
}

// resolverState is the update for peers ps: one endpoint per member, with
// the member in the endpoint's attributes and our state in the update's.
// The plain address list is there for a policy that reads only addresses
// (one set by the user's service config); ours read the endpoints.
func (s *state) resolverState(ps []peer) resolver.State {
	st := resolver.State{
		Endpoints:  make([]resolver.Endpoint, 0, len(ps)),
		Addresses:  make([]resolver.Address, 0, len(ps)),
		Attributes: attributes.New(stateKey{}, s),
	}
	for _, p := range ps {
		a := attributes.New(memberKey{}, memberAttr{name: p.name, weight: p.weight, rank: p.rank, since: p.since})
		addr := resolver.Address{Addr: p.addr}
		if s.named {
			addr.ServerName = p.name
		}
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}, Attributes: a})
		st.Addresses = append(st.Addresses, addr)
	}
	return st
}

func samePeers(a, b []peer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type viewResolver struct {
	s          *state
	cancel     context.CancelFunc
	unregister func()
	wg         sync.WaitGroup
	once       sync.Once
}

// ResolveNow does nothing: updates are pushed on every view change.
func (r *viewResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the resolver and waits for its goroutine.
func (r *viewResolver) Close() {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
		r.unregister()
		r.s.close()
	})
}
