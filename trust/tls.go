package trust

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Authorizer decides, after the chain was verified against the CA, whether
// a peer's identity may connect. It is go-spiffe's tlsconfig.Authorizer.
type Authorizer = tlsconfig.Authorizer

// AuthorizeDomain admits any well-formed identity of the domain.
func AuthorizeDomain(domain string) Authorizer {
	return func(sid spiffeid.ID, _ [][]*x509.Certificate) error {
		id, err := FromID(sid)
		if err != nil {
			return err
		}
		if id.Domain != domain {
			return fmt.Errorf("trust: peer %s is not of domain %q", sid, domain)
		}
		return nil
	}
}

// AuthorizeRole admits identities of the domain with the given role.
func AuthorizeRole(domain, role string) Authorizer {
	return func(sid spiffeid.ID, _ [][]*x509.Certificate) error {
		id, err := FromID(sid)
		if err != nil {
			return err
		}
		if id.Domain != domain || id.Role != role {
			return fmt.Errorf("trust: peer %s is not a %s of domain %q", sid, role, domain)
		}
		return nil
	}
}

// AuthorizeIdentity admits exactly one identity.
func AuthorizeIdentity(want Identity) Authorizer {
	return func(sid spiffeid.ID, _ [][]*x509.Certificate) error {
		id, err := FromID(sid)
		if err != nil {
			return err
		}
		if id != want {
			return fmt.Errorf("trust: peer is %s, want %s", id, want)
		}
		return nil
	}
}

// ServerTLSConfig is a mutual-TLS server configuration: it presents the
// Source's current certificate (rotations apply to new handshakes) and
// admits clients whose chain leads to the Source's CA and whom auth admits.
//
// Session tickets are off: crypto/tls does not call VerifyPeerCertificate
// on a resumed session, so a client whose CA was removed from the bundle
// could otherwise resume its way back in.
func ServerTLSConfig(src *Source, auth Authorizer) *tls.Config {
	c := tlsconfig.MTLSServerConfig(src, src, auth)
	c.MinVersion = tls.VersionTLS13
	c.SessionTicketsDisabled = true
	return c
}

// ClientTLSConfig is the client side of ServerTLSConfig: it presents the
// Source's certificate and admits servers whom auth admits.
func ClientTLSConfig(src *Source, auth Authorizer) *tls.Config {
	c := tlsconfig.MTLSClientConfig(src, src, auth)
	c.MinVersion = tls.VersionTLS13
	return c
}

// PeerIdentity reads the identity of the other side of a TLS connection
// from its leaf certificate. Call it only on connections made with this
// package's configurations, which verified the chain during the handshake.
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("trust: the peer presented no certificate")
	}
	sid, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return Identity{}, fmt.Errorf("trust: peer certificate: %w", err)
	}
	return FromID(sid)
}
