package lb

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/carbonkit/carbon/cluster"
)

// Dial returns a gRPC client connection to the routable members of
// subDomain of n's domain, at their "grpc" endpoint (see [WithEndpoint]),
// balanced by the policy of [WithPolicy] (LeastLoaded by default). The
// member list follows n's views: a member that fails, leaves, drains or
// stops serving gets no new calls once n has seen it.
//
// When n has a trust root (cluster.Config.Trust), the connection runs
// over mutual TLS from the same certificates, and each member must prove
// the certificate of its own name, sub-domain and domain: an address that
// a forged tag points elsewhere fails its handshake. Without one it uses
// insecure transport credentials. [WithDialOptions] may give others.
// Close it when done.
func Dial(n *cluster.Node, subDomain string, opts ...Option) (*grpc.ClientConn, error) {
	if n == nil {
		return nil, fmt.Errorf("%w: Dial: nil node", ErrInvalidOption)
	}
	if subDomain == "" {
		return nil, fmt.Errorf("%w: Dial: empty sub-domain", ErrInvalidOption)
	}
	o, err := buildOptions("grpc", opts)
	if err != nil {
		return nil, err
	}
	s := newState(o, subDomain, "grpc")
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if src := n.TrustSource(); src != nil {
		creds, s.named = newMemberCredentials(src, n.Domain(), subDomain), true
	}
	return newClient(&resolverBuilder{n: n, s: s}, subDomain, creds, o)
}

// serviceConfig is the channel's service config for policy p.
func serviceConfig(p Policy) string {
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, p.balancerName())
}

func newClient(rb *resolverBuilder, subDomain string, creds credentials.TransportCredentials, o *options) (*grpc.ClientConn, error) {
	registerBalancers()
	dopts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(serviceConfig(o.policy)),
	}, o.dialOpts...)
	cc, err := grpc.NewClient(Scheme+":///"+subDomain, dopts...)
	if err != nil {
		return nil, fmt.Errorf("lb: Dial %q: %w", subDomain, err)
	}
	return cc, nil
}
