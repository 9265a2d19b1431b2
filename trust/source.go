package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Source holds a node's trust material: the CA certificates its domain
// trusts (one or more, so that a CA can be rotated) and its own
// certificate chain and key. It implements x509svid.Source and
// x509bundle.Source. Safe for concurrent use; reloads swap the material
// atomically and keep the last good one when new files are invalid.
type Source struct {
	mu    sync.RWMutex
	mat   *material
	files [3]string // ca, cert, key; empty for an in-memory source
	raw   [3][]byte // what the files held at the last load attempt
	gen   atomic.Uint64
	now   func() time.Time
	close func() error // stops a Workload API source; nil for the others
}

type material struct {
	id     Identity
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

// NewSource builds a Source from material in memory: the trusted CA
// certificates, the node's chain (leaf first) and its key.
func NewSource(cas []*x509.Certificate, chain []*x509.Certificate, key crypto.Signer) (*Source, error) {
	s := &Source{now: time.Now}
	m, err := s.build(cas, chain, key)
	if err != nil {
		return nil, err
	}
	s.mat = m
	s.gen.Store(1)
	return s, nil
}

// SourceOf is NewSource for what a CA issued.
func SourceOf(ca *CA, is *Issued) (*Source, error) {
	return NewSource([]*x509.Certificate{ca.Certificate()}, is.Chain, is.Key)
}

// LoadFiles builds a Source from PEM files: caFile holds the trusted CA
// certificates, certFile the node's chain (leaf first), keyFile its PKCS
// #8 (or SEC 1 / PKCS #1) private key. Call Watch or Reload to pick up
// rotated files.
func LoadFiles(caFile, certFile, keyFile string) (*Source, error) {
	s := &Source{files: [3]string{caFile, certFile, keyFile}, now: time.Now}
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again and, when their content changed and is
// valid, swaps the material in. It reports whether it swapped. On error
// the Source keeps serving its last good material. An in-memory Source
// has nothing to reload.
func (s *Source) Reload() (bool, error) {
	if s.files[0] == "" {
		return false, nil
	}
	var raw [3][]byte
	for i, f := range s.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return false, fmt.Errorf("trust: %w", err)
		}
		raw[i] = b
	}
	s.mu.RLock()
	same := s.mat != nil && bytes.Equal(raw[0], s.raw[0]) && bytes.Equal(raw[1], s.raw[1]) && bytes.Equal(raw[2], s.raw[2])
	s.mu.RUnlock()
	if same {
		return false, nil
	}
	cas, err := parseCerts(raw[0], s.files[0])
	if err != nil {
		return false, err
	}
	chain, err := parseCerts(raw[1], s.files[1])
	if err != nil {
		return false, err
	}
	key, err := parseKey(raw[2], s.files[2])
	if err != nil {
		return false, err
	}
	m, err := s.build(cas, chain, key)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.mat, s.raw = m, raw
	s.mu.Unlock()
	s.gen.Add(1)
	return true, nil
}

// Watch reloads the files every interval until ctx ends, calling onErr
// (when not nil) with each failed reload; the Source keeps its last good
// material meanwhile.
func (s *Source) Watch(ctx context.Context, every time.Duration, onErr func(error)) {
	if s.files[0] == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Reload(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Generation counts the material swaps: it changes whenever a reload put
// new material in, so a user of the Source can tell it must re-sign.
func (s *Source) Generation() uint64 { return s.gen.Load() }

// Identity returns the identity the node's certificate names.
func (s *Source) Identity() Identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mat.id
}

// Leaf returns the node's certificate.
func (s *Source) Leaf() *x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mat.svid.Certificates[0]
}

// Chain returns the node's certificate chain, leaf first.
func (s *Source) Chain() []*x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mat.svid.Certificates
}

// Valid reports whether the node's certificate is valid at now, with an
// error that says whether it expired or is not valid yet, and when.
func (s *Source) Valid(now time.Time) error {
	return validAt(s.Leaf(), now)
}

// GetX509SVID implements x509svid.Source. It refuses a certificate that
// is not valid now, so that a node never presents an expired certificate.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	m := s.mat
	s.mu.RUnlock()
	if err := validAt(m.svid.Certificates[0], s.now()); err != nil {
		return nil, err
	}
	return m.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source: the CA
// certificates of the node's own domain; other domains are refused.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	m := s.mat
	s.mu.RUnlock()
	if td != m.bundle.TrustDomain() {
		return nil, fmt.Errorf("trust: no CA for trust domain %q (this node trusts %q)", td.Name(), m.bundle.TrustDomain().Name())
	}
	return m.bundle, nil
}

func (s *Source) signer() crypto.Signer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mat.svid.PrivateKey
}

// build checks material: a leaf with a valid identity, valid now, that
// chains to one of the CA certificates, and a key that matches it.
func (s *Source) build(cas, chain []*x509.Certificate, key crypto.Signer) (*material, error) {
	if len(cas) == 0 {
		return nil, errors.New("trust: no CA certificate")
	}
	if len(chain) == 0 {
		return nil, errors.New("trust: no node certificate")
	}
	svid := &x509svid.SVID{Certificates: chain, PrivateKey: key}
	sid, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return nil, fmt.Errorf("trust: node certificate: %w", err)
	}
	id, err := FromID(sid)
	if err != nil {
		return nil, err
	}
	svid.ID = sid
	if err := validAt(chain[0], s.now()); err != nil {
		return nil, err
	}
	bundle := x509bundle.FromX509Authorities(sid.TrustDomain(), cas)
	if _, _, err := x509svid.Verify(chain, bundle); err != nil {
		return nil, fmt.Errorf("trust: node certificate %s does not chain to the CA file: %w", id, err)
	}
	if !publicKeyEqual(key.Public(), chain[0].PublicKey) {
		return nil, fmt.Errorf("trust: private key does not match the certificate of %s", id)
	}
	return &material{id: id, svid: svid, bundle: bundle}, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// validAt says whether c is valid at now, naming the bound it is outside.
func validAt(c *x509.Certificate, now time.Time) error {
	name := c.Subject.CommonName
	if len(c.URIs) > 0 {
		name = c.URIs[0].String()
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("trust: certificate of %s is not valid yet: valid from %s (now %s)", name, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("trust: certificate of %s expired at %s (now %s)", name, c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func parseCerts(b []byte, file string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trust: %s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("trust: %s holds no PEM CERTIFICATE block", file)
	}
	return out, nil
}

func parseKey(b []byte, file string) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("trust: %s holds no PEM block", file)
	}
	var k any
	var err error
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("trust: %s: %w", file, err)
	}
	sg, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("trust: %s: key of type %T cannot sign", file, k)
	}
	return sg, nil
}
