package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"time"
)

// handshakeTimeout bounds one proof on the server side, so a peer that
// connects and stalls cannot hold a goroutine.
const handshakeTimeout = 5 * time.Second

// maxProofs bounds the proofs served at once: the server signs its half
// of a handshake before it has checked the client, so without a bound
// anyone who can connect could make it sign without end. Connections
// beyond it are closed at once; a peer retries.
const maxProofs = 32

// IdentityServer answers proofs of identity: a mutual-TLS handshake with
// the node's current certificate, then nothing. Members advertise its
// address so that others can verify their certificate.
type IdentityServer struct {
	lis   net.Listener
	wg    sync.WaitGroup
	once  sync.Once
	mu    sync.Mutex
	conns map[net.Conn]struct{} // proofs in progress, closed by Close
	done  bool
}

// ServeIdentity serves proofs on lis until Close. It admits any client of
// the Source's domain.
func ServeIdentity(lis net.Listener, src *Source) *IdentityServer {
	s := &IdentityServer{lis: lis, conns: map[net.Conn]struct{}{}}
	cfg := ServerTLSConfig(src, AuthorizeDomain(src.Identity().Domain))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if !s.track(c, true) {
				c.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.track(c, false)
				defer c.Close()
				c.SetDeadline(time.Now().Add(handshakeTimeout))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					// Wait for the client's close so it reads the whole
					// handshake before the connection goes away.
					var b [1]byte
					tc.Read(b[:])
				}
			}()
		}
	}()
	return s
}

func (s *IdentityServer) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.done || len(s.conns) >= maxProofs {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

// Addr returns the address the server listens on.
func (s *IdentityServer) Addr() net.Addr { return s.lis.Addr() }

// Close stops the server and waits for proofs in progress.
func (s *IdentityServer) Close() error {
	var err error
	s.once.Do(func() {
		err = s.lis.Close()
		s.mu.Lock()
		s.done = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return err
}

// Verify proves the identity of whoever serves addr: a mutual-TLS
// handshake whose chain must lead to src's CA. It returns the identity and
// leaf certificate the peer proved it holds the key of; the caller checks
// that the identity is the one it expects (the member's name and tags).
func Verify(ctx context.Context, addr string, src *Source) (Identity, *x509.Certificate, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Identity{}, nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(handshakeTimeout))
	}
	tc := tls.Client(c, ClientTLSConfig(src, AuthorizeDomain(src.Identity().Domain)))
	if err := tc.HandshakeContext(ctx); err != nil {
		return Identity{}, nil, err
	}
	cs := tc.ConnectionState()
	id, err := PeerIdentity(&cs)
	if err != nil {
		return Identity{}, nil, err
	}
	return id, cs.PeerCertificates[0], nil
}
