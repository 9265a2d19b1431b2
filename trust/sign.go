package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Purposes keep signatures apart: each signed message starts with its
// purpose, so a signature made for one can never verify as another.
const (
	purposeClaim    = "carbon-claim-v2"
	purposeRevision = "carbon-revision-v1"
	purposeControl  = "carbon-control-v1"
)

// message is the signed input: the purpose, then each field length-prefixed,
// so that no two field lists encode to the same bytes.
func message(purpose string, fields ...[]byte) []byte {
	n := len(purpose) + 1
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, purpose...)
	b = append(b, 0)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Control is a request from one member to another of its domain (drain,
// leave), signed by the sender so that the target can tell who asks:
// a cluster query's sender name is only what the query says. At and Nonce
// let the target refuse a replay: a request older or newer than its window,
// or one whose nonce it has seen.
type Control struct {
	Domain string    // the domain both are in
	From   string    // the sender's node name, as its certificate names it
	To     string    // the target's node name
	Op     string    // the operation, such as "drain"
	At     time.Time // when the sender signed it
	Nonce  []byte    // random, 16 bytes
}

func controlMessage(c Control) []byte {
	return message(purposeControl, []byte(c.Domain), []byte(c.From), []byte(c.To), []byte(c.Op), u64(uint64(c.At.UnixNano())), c.Nonce)
}

// SignControl signs c with the Source's key.
func SignControl(src *Source, c Control) ([]byte, error) {
	return sign(src.signer(), controlMessage(c))
}

// VerifyControl checks a control request's signature against the public
// key of the sender's verified certificate.
func VerifyControl(pub crypto.PublicKey, sig []byte, c Control) error {
	if err := verify(pub, controlMessage(c), sig); err != nil {
		return fmt.Errorf("trust: %s request from %s to %s in %s: %w", c.Op, c.From, c.To, c.Domain, err)
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func claimMessage(domain, subDomain, name string, epoch uint64, seal []byte) []byte {
	return message(purposeClaim, []byte(domain), []byte(subDomain), []byte(name), u64(epoch), seal)
}

// SealSize is the length of a claim's seal, and SecretSize that of the
// secret it seals.
const (
	SealSize   = 16
	SecretSize = 16
)

// NewClaimSecret returns a random secret for a claim and its seal.
//
// A claim is signed ahead of time, over the seal, and takes effect only
// when the claimant reveals the secret: so a stand-by can publish its next
// claim early, peers check that signature early, and taking the claim
// costs them a hash instead of a signature check, while the signed claim
// alone, copied or replayed, claims nothing.
func NewClaimSecret() (secret, seal []byte, err error) {
	secret = make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	return secret, Seal(secret), nil
}

// Seal returns the seal of a claim secret: the first SealSize bytes of its
// SHA-256.
func Seal(secret []byte) []byte {
	d := sha256.Sum256(secret)
	return d[:SealSize]
}

// Opens reports whether secret is the one seal was made from.
func Opens(seal, secret []byte) bool {
	d := sha256.Sum256(secret)
	return len(seal) == SealSize && subtle.ConstantTimeCompare(d[:SealSize], seal) == 1
}

// SignClaim signs a manager's claim to epoch, sealed by seal (see
// [NewClaimSecret]), with the Source's key. An ed25519 signature is 64
// bytes (86 in unpadded base64): with the seal and epoch it fits a tag.
func SignClaim(src *Source, domain, subDomain, name string, epoch uint64, seal []byte) ([]byte, error) {
	return sign(src.signer(), claimMessage(domain, subDomain, name, epoch, seal))
}

// VerifyClaim checks a claim signature against the public key of the
// claimant's verified certificate. The claim takes effect only once its
// secret is revealed ([Opens]).
func VerifyClaim(pub crypto.PublicKey, sig []byte, domain, subDomain, name string, epoch uint64, seal []byte) error {
	if err := verify(pub, claimMessage(domain, subDomain, name, epoch, seal), sig); err != nil {
		return fmt.Errorf("trust: claim of %s to epoch %d in %s/%s: %w", name, epoch, domain, subDomain, err)
	}
	return nil
}

// Revision is what a depsync revision signature covers.
type Revision struct {
	Domain, SubDomain string
	Epoch, Seq        uint64
	Root              []byte // the manifest's root hash
}

// RevisionSignature is a publisher's proof: its certificate chain (DER,
// leaf first) and its signature over the Revision.
type RevisionSignature struct {
	Chain [][]byte
	Sig   []byte
}

func revisionMessage(r Revision) []byte {
	return message(purposeRevision, []byte(r.Domain), []byte(r.SubDomain), u64(r.Epoch), u64(r.Seq), r.Root)
}

// SignRevision signs r with the Source's key and attaches its chain.
func SignRevision(src *Source, r Revision) (RevisionSignature, error) {
	sig, err := sign(src.signer(), revisionMessage(r))
	if err != nil {
		return RevisionSignature{}, err
	}
	var chain [][]byte
	for _, c := range src.Chain() {
		chain = append(chain, c.Raw)
	}
	return RevisionSignature{Chain: chain, Sig: sig}, nil
}

// VerifyRevision checks that s's chain leads to src's CA, names a manager
// of r's domain, and signed r. It returns the publisher's identity.
func VerifyRevision(src *Source, r Revision, s RevisionSignature) (Identity, error) {
	if len(s.Chain) == 0 {
		return Identity{}, errors.New("trust: revision is not signed (no certificate chain)")
	}
	sid, _, err := x509svid.ParseAndVerify(s.Chain, src)
	if err != nil {
		return Identity{}, fmt.Errorf("trust: revision publisher's certificate: %w", err)
	}
	id, err := FromID(sid)
	if err != nil {
		return Identity{}, err
	}
	if id.Role != RoleManager || id.Domain != r.Domain {
		return id, fmt.Errorf("trust: revision signed by %s, not by a manager of domain %q", id, r.Domain)
	}
	leaf, err := x509.ParseCertificate(s.Chain[0])
	if err != nil {
		return id, err
	}
	if err := verify(leaf.PublicKey, revisionMessage(r), s.Sig); err != nil {
		return id, fmt.Errorf("trust: revision %d.%d signed by %s: %w", r.Epoch, r.Seq, id, err)
	}
	return id, nil
}

func sign(k crypto.Signer, msg []byte) ([]byte, error) {
	switch k.(type) {
	case ed25519.PrivateKey:
		return k.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		d := sha256.Sum256(msg)
		return k.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("trust: cannot sign with a key of type %T", k)
}

var errBadSignature = errors.New("bad signature")

func verify(pub crypto.PublicKey, msg, sig []byte) error {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(p, msg, sig) {
			return errBadSignature
		}
		return nil
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(p, d[:], sig) {
			return errBadSignature
		}
		return nil
	case *rsa.PublicKey:
		d := sha256.Sum256(msg)
		if rsa.VerifyPKCS1v15(p, crypto.SHA256, d[:], sig) != nil {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}
