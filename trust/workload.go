package trust

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// FromWorkloadAPI returns a Source fed by a SPIFFE Workload API, such as a
// SPIRE agent's socket ("unix:///run/spire/sockets/agent.sock"; "" uses
// $SPIFFE_ENDPOINT_SOCKET). It waits for the first certificate until ctx
// ends, then follows the API's rotations until Close: each new certificate
// or CA bundle that passes the checks files get (a valid identity, valid
// now, chaining to the bundle) is swapped in and raises Generation, as a
// reload of rotated files does. An update that fails them is passed to
// onErr (when not nil) and the Source keeps its last good material.
func FromWorkloadAPI(ctx context.Context, addr string, onErr func(error)) (*Source, error) {
	var opts []workloadapi.X509SourceOption
	where := "$SPIFFE_ENDPOINT_SOCKET"
	if addr != "" {
		opts = append(opts, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
		where = addr
	}
	ws, err := workloadapi.NewX509Source(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("trust: workload API at %s: %w", where, err)
	}
	s := &Source{now: time.Now}
	m, err := s.fromWorkload(ws)
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("trust: workload API at %s: %w", where, err)
	}
	s.mat = m
	s.gen.Store(1)
	follow, stop := context.WithCancel(context.Background())
	s.close = func() error {
		stop()
		return ws.Close()
	}
	go func() {
		for {
			select {
			case <-follow.Done():
				return
			case <-ws.Updated():
			}
			m, err := s.fromWorkload(ws)
			if err != nil {
				if onErr != nil {
					onErr(fmt.Errorf("trust: workload API at %s: update refused, keeping the current certificate: %w", where, err))
				}
				continue
			}
			s.mu.Lock()
			same := sameMaterial(s.mat, m)
			if !same {
				s.mat = m
			}
			s.mu.Unlock()
			if !same {
				s.gen.Add(1)
			}
		}
	}()
	return s, nil
}

// Close stops a Source from following the Workload API. A Source of files
// or of memory has nothing to close.
func (s *Source) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// fromWorkload checks the Workload API's current certificate and the bundle
// of its trust domain.
func (s *Source) fromWorkload(ws *workloadapi.X509Source) (*material, error) {
	svid, err := ws.GetX509SVID()
	if err != nil {
		return nil, err
	}
	b, err := ws.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return nil, err
	}
	return s.build(b.X509Authorities(), svid.Certificates, svid.PrivateKey)
}

// sameMaterial reports whether a and b hold the same certificates, so that
// an update that changed nothing does not make users re-sign.
func sameMaterial(a, b *material) bool {
	ac, bc := a.svid.Certificates, b.svid.Certificates
	aa, ba := a.bundle.X509Authorities(), b.bundle.X509Authorities()
	if len(ac) != len(bc) || len(aa) != len(ba) {
		return false
	}
	for i := range ac {
		if !bytes.Equal(ac[i].Raw, bc[i].Raw) {
			return false
		}
	}
	for i := range aa {
		if !bytes.Equal(aa[i].Raw, ba[i].Raw) {
			return false
		}
	}
	return true
}
