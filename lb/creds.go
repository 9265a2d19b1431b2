package lb

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/carbonkit/carbon/trust"
)

// memberCredentials are mutual-TLS credentials that check, per connection,
// that the server proves the certificate of the member the address belongs
// to: the resolver puts the member's name in the address's ServerName,
// which grpc-go hands to ClientHandshake as the authority.
type memberCredentials struct {
	credentials.TransportCredentials
	domain, sub string
}

func newMemberCredentials(src *trust.Source, domain, sub string) credentials.TransportCredentials {
	return &memberCredentials{
		TransportCredentials: credentials.NewTLS(trust.ClientTLSConfig(src, trust.AuthorizeDomain(domain))),
		domain:               domain, sub: sub,
	}
}

func (c *memberCredentials) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	ti, ok := info.(credentials.TLSInfo)
	if !ok {
		conn.Close()
		return nil, nil, fmt.Errorf("lb: handshake with %s gave no TLS state", authority)
	}
	id, err := trust.PeerIdentity(&ti.State)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if id.Name != authority || id.SubDomain != c.sub || id.Domain != c.domain {
		conn.Close()
		return nil, nil, fmt.Errorf("lb: the server at %s proved %s, want member %q of %s/%s", raw.RemoteAddr(), id, authority, c.domain, c.sub)
	}
	return conn, info, nil
}

func (c *memberCredentials) Clone() credentials.TransportCredentials {
	return &memberCredentials{TransportCredentials: c.TransportCredentials.Clone(), domain: c.domain, sub: c.sub}
}
