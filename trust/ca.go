package trust

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"
)

// CA is a small certificate authority for tests and first deployments: an
// ed25519 root that issues node certificates in memory. Production domains
// use their existing CA; see the package documentation for what a node
// certificate must hold.
type CA struct {
	domain string
	cert   *x509.Certificate
	key    ed25519.PrivateKey
}

// NewCA makes a CA for a domain, valid for ten years.
func NewCA(domain string) (*CA, error) {
	if _, err := (Identity{Domain: domain, SubDomain: "x", Role: RoleWorker, Name: "x"}).ID(); err != nil {
		return nil, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	sn := serial()
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		// A unique subject and key id: during a rotation two CAs of one
		// domain are trusted at once, and chain building matches on both.
		Subject:               pkix.Name{CommonName: domain + " carbon CA", SerialNumber: sn.Text(16)},
		SubjectKeyId:          ski[:20],
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: domain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{domain: domain, cert: cert, key: key}, nil
}

// Domain returns the trust domain the CA issues for.
func (ca *CA) Domain() string { return ca.domain }

// Certificate returns the CA's own certificate, the domain's trust root.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// BundlePEM returns the CA certificate in PEM, the content of a node's CA file.
func (ca *CA) BundlePEM() []byte { return pemCert(ca.cert.Raw) }

// IssueOption changes a certificate Issue makes.
type IssueOption func(*x509.Certificate)

// ValidBetween sets the certificate's validity period (for tests of
// expired and not-yet-valid certificates).
func ValidBetween(notBefore, notAfter time.Time) IssueOption {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// Issued is a node certificate and its private key.
type Issued struct {
	Chain []*x509.Certificate // leaf first
	Key   crypto.Signer
}

// CertPEM returns the chain in PEM, leaf first.
func (is *Issued) CertPEM() []byte {
	var out []byte
	for _, c := range is.Chain {
		out = append(out, pemCert(c.Raw)...)
	}
	return out
}

// KeyPEM returns the private key in PKCS #8 PEM.
func (is *Issued) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(is.Key)
	if err != nil {
		panic(err) // an ed25519 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes the CA bundle, the chain and the key to the three
// paths (the key readable by the owner only), the files LoadFiles reads.
func (is *Issued) WriteFiles(ca *CA, caFile, certFile, keyFile string) error {
	if err := os.WriteFile(caFile, ca.BundlePEM(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(certFile, is.CertPEM(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, is.KeyPEM(), 0o600)
}

// Issue makes a certificate for id, valid from a minute ago for a year
// unless an option says otherwise. The identity's domain must be the CA's.
func (ca *CA) Issue(id Identity, opts ...IssueOption) (*Issued, error) {
	sid, err := id.ID()
	if err != nil {
		return nil, err
	}
	if id.Domain != ca.domain {
		return nil, fmt.Errorf("trust: CA of domain %q cannot issue for %s", ca.domain, id)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.Name},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{sid.URL()},
	}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Chain: []*x509.Certificate{leaf}, Key: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
