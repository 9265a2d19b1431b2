package cluster

import (
	"encoding/base64"
	"errors"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// Signed claims (trust on).
//
// A claim counts only when signed by the claimant's manager certificate.
// Checking a signature costs a peer tens of microseconds, and in a
// hand-over every member pays it at once, on the critical path, while the
// new active waits for their acks. So a stand-by signs the claim it would
// make next ahead of time, over the seal of a fresh secret, and publishes
// it (tag c) while it does not claim; peers check that signature at
// leisure and keep the verdict. When it claims that epoch it reveals the
// secret (tag k), and a peer only has to see that the secret opens the
// seal: a hash. The signed claim alone claims nothing, so a copy of a
// stand-by's tags, replayed under its name, cannot make it active.

// signedClaim is a node's signed claim: for epoch, under the certificate
// generation gen, with the secret that opens its seal.
type signedClaim struct {
	epoch, gen   uint64
	secret, seal []byte
	key          string // the secret in unpadded base64: the value of tag k
	value        string // the value of tag c
}

// claimsWithTrust reports whether this node signs claims: a manager in
// Active/Passive mode with a trust root.
func (n *Node) claimsWithTrust() bool {
	return n.ver != nil && n.cfg.Role == role.Manager && !n.cfg.Observer && n.cfg.ManagerMode == ActivePassive
}

// setNextLocked records the epoch this node would claim next, given the
// highest it has seen, and reports whether it changed (the tags must then
// carry a new signed claim). n.mu must be held.
func (n *Node) setNextLocked(maxSeen uint64) bool {
	if !n.claimsWithTrust() {
		return false
	}
	next, _ := nextEpoch(maxSeen, n.cfg.NodeName)
	if next == n.next {
		return false
	}
	n.next = next
	return true
}

// signedClaimTagsLocked adds the signed claim, and while the node claims
// the secret that opens it, to t. The signature is made once per epoch and
// certificate generation; a reload re-signs the same seal with the new
// key. n.mu must be held.
func (n *Node) signedClaimTagsLocked(t map[string]string) {
	if !n.claimsWithTrust() {
		return
	}
	e := n.claim
	if e == 0 && n.state != Draining {
		// A draining node cannot claim: signing now would only add a check
		// to every peer's work while the hand-over runs.
		e = n.next
	}
	if e == 0 {
		return
	}
	gen := n.cfg.Trust.Generation()
	s := &n.signed
	if s.epoch != e || s.gen != gen || s.value == "" {
		secret, seal := s.secret, s.seal
		if s.epoch != e || secret == nil {
			var err error
			if secret, seal, err = trust.NewClaimSecret(); err != nil {
				n.log.Error("trust: cannot make a claim secret", "err", err)
				return
			}
		}
		sig, err := trust.SignClaim(n.cfg.Trust, n.cfg.Domain, n.cfg.SubDomain, n.cfg.NodeName, e, seal)
		if err != nil {
			n.log.Error("trust: cannot sign the claim", "epoch", e, "err", err)
			return
		}
		*s = signedClaim{epoch: e, gen: gen, secret: secret, seal: seal,
			key: base64.RawStdEncoding.EncodeToString(secret), value: tags.EncodeSignedClaim(e, seal, sig)}
	}
	t[tags.KeyClaimSig] = s.value
	if n.claim != 0 {
		t[tags.KeyClaimKey] = s.key
	}
}

// checkedClaim is a member's signed claim whose signature this node
// checked against the member's proven key.
type checkedClaim struct {
	value string // the tag it came in
	epoch uint64
	seal  []byte
}

// annotateClaim sets m.Claim from its tags, once m is verified under vd:
// the claim counts when its signed claim carries the member's signature
// for that epoch and its secret opens the seal. A signed claim is checked
// once per value, usually before the member claims. Loop only.
func (v *verifier) annotateClaim(m *Member, vd verdict) {
	if m.claimSig != "" && vd.claim.value != m.claimSig {
		e, seal, sig, err := tags.DecodeSignedClaim(m.claimSig)
		if err == nil {
			err = trust.VerifyClaim(vd.pub, sig, m.Domain, m.SubDomain, m.Name, e, seal)
		}
		if err == nil {
			vd.claim = checkedClaim{value: m.claimSig, epoch: e, seal: seal}
			v.verdicts[m.Name] = vd
		} else if v.badClaims[m.Name] != m.claimSig {
			// The member may have rotated its key since its proof: prove
			// it again, once per signed claim that fails.
			v.badClaims[m.Name] = m.claimSig
			v.n.log.Debug("trust: a member's signed claim does not verify; proving it again", "member", m.Name, "err", err)
			v.ask(m.Name, vd.key)
		}
	}
	if m.rawClaim == 0 {
		return
	}
	err := errNoSignedClaim
	if vd.claim.value == m.claimSig && m.claimSig != "" {
		err = errClaimSecret
		if vd.claim.epoch != m.rawClaim {
			err = errClaimEpoch
		} else if secret, derr := base64.RawStdEncoding.DecodeString(m.claimKey); derr == nil && trust.Opens(vd.claim.seal, secret) {
			m.Claim = m.rawClaim
			v.accepted[m.Name] = m.rawClaim
			return
		}
	}
	if v.accepted[m.Name] == m.rawClaim {
		// The claim was accepted before: the member re-signed it with a
		// rotated key. Keep it while its new certificate is proven.
		m.Claim = m.rawClaim
		v.ask(m.Name, vd.key)
		delete(v.verdicts, m.Name)
		return
	}
	v.n.log.Warn("trust: ignoring a claim", "member", m.Name, "epoch", m.rawClaim, "err", err)
}

var (
	errNoSignedClaim = errors.New("no signed claim that verifies with the member's certificate")
	errClaimEpoch    = errors.New("the signed claim is for another epoch")
	errClaimSecret   = errors.New("the secret does not open the signed claim's seal")
)
