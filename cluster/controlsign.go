package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/carbonkit/carbon/trust"
)

// The control request's wire form: the operation byte, the target's name
// with a one-byte length, and with a trust root the signed trailer: the
// signing time (Unix nanoseconds, 8 bytes), a 16-byte nonce and the
// signature.
type controlReq struct {
	op     byte
	to     string
	at     time.Time
	nonce  [16]byte
	sig    []byte
	signed bool
}

// controlPayload encodes a request from this node, signed when the node
// has a trust root.
func (n *Node) controlPayload(op byte, verb, to string) ([]byte, error) {
	if len(to) > 255 {
		return nil, fmt.Errorf("member name of %d bytes, want at most 255", len(to))
	}
	b := append([]byte{op, byte(len(to))}, to...)
	if n.cfg.Trust == nil {
		return b, nil
	}
	c := trust.Control{Domain: n.cfg.Domain, From: n.cfg.NodeName, To: to, Op: verb, At: time.Now(), Nonce: make([]byte, 16)}
	rand.Read(c.Nonce)
	sig, err := trust.SignControl(n.cfg.Trust, c)
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.At.UnixNano()))
	b = append(b, c.Nonce...)
	return append(b, sig...), nil
}

// parseControl decodes a request; ok is false when it is malformed.
func parseControl(p []byte) (r controlReq, ok bool) {
	if len(p) < 2 || len(p) < 2+int(p[1]) {
		return r, false
	}
	r.op, r.to = p[0], string(p[2:2+int(p[1])])
	rest := p[2+int(p[1]):]
	if len(rest) == 0 {
		return r, true
	}
	if len(rest) <= 8+16 {
		return r, false
	}
	r.at = time.Unix(0, int64(binary.BigEndian.Uint64(rest)))
	copy(r.nonce[:], rest[8:24])
	r.sig, r.signed = rest[24:], true
	return r, true
}

// errUnsigned refuses a request without a signature in a domain with a
// trust root.
var errUnsigned = errors.New("the domain has a trust root, and the request is not signed")

// checkControl decides whether a request from member m may be honoured
// under the trust root: m is verified, its certificate names the manager
// role, the signature is m's, the time is within controlWindow and the
// nonce is new. Loop only.
func (v *verifier) checkControl(m *Member, verb string, r controlReq) error {
	if !r.signed {
		return errUnsigned
	}
	if m.Trust != TrustVerified {
		return fmt.Errorf("%s is not a verified member", m.Name)
	}
	if id := identityRole(m); id != trust.RoleManager {
		return fmt.Errorf("%s holds a certificate for role %s, not manager", m.Name, id)
	}
	vd := v.verdicts[m.Name]
	c := trust.Control{Domain: v.n.cfg.Domain, From: m.Name, To: r.to, Op: verb, At: r.at, Nonce: r.nonce[:]}
	if err := trust.VerifyControl(vd.pub, r.sig, c); err != nil {
		return err
	}
	now := time.Now()
	if d := now.Sub(r.at); d > controlWindow || d < -controlWindow {
		return fmt.Errorf("the request was signed at %s, %v from this node's clock (at most %v allowed)", r.at.UTC().Format(time.RFC3339), d.Round(time.Second), controlWindow)
	}
	if _, seen := v.nonces[r.nonce]; seen {
		return fmt.Errorf("the request was seen before (a replay)")
	}
	for k, until := range v.nonces {
		if now.After(until) {
			delete(v.nonces, k)
		}
	}
	v.nonces[r.nonce] = r.at.Add(2 * controlWindow)
	return nil
}
