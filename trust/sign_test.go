package trust

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestClaimSignature(t *testing.T) {
	ca := mustCA(t, "d.test")
	m1 := mustSource(t, ca, mgr("m1"))
	secret, seal, err := NewClaimSecret()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := SignClaim(m1, "d.test", "mgt", "m1", 42, seal)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(base64.RawStdEncoding.EncodeToString(sig)); n > 90 {
		t.Fatalf("claim signature is %d characters in base64, too big for a tag", n)
	}
	pub := m1.Leaf().PublicKey
	if err := VerifyClaim(pub, sig, "d.test", "mgt", "m1", 42, seal); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"epoch":      func() error { return VerifyClaim(pub, sig, "d.test", "mgt", "m1", 43, seal) },
		"name":       func() error { return VerifyClaim(pub, sig, "d.test", "mgt", "m2", 42, seal) },
		"sub-domain": func() error { return VerifyClaim(pub, sig, "d.test", "mgt2", "m1", 42, seal) },
		"domain":     func() error { return VerifyClaim(pub, sig, "e.test", "mgt", "m1", 42, seal) },
		"seal":       func() error { return VerifyClaim(pub, sig, "d.test", "mgt", "m1", 42, Seal([]byte("another secret"))) },
		// Field boundaries are part of the message: moving a byte from
		// one field to the next changes it.
		"boundaries": func() error { return VerifyClaim(pub, sig, "d.test", "mg", "tm1", 42, seal) },
		"other key": func() error {
			return VerifyClaim(mustSource(t, ca, mgr("m2")).Leaf().PublicKey, sig, "d.test", "mgt", "m1", 42, seal)
		},
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Errorf("tampered %s: %v", name, err)
		}
	}
	if !Opens(seal, secret) {
		t.Error("the secret does not open its own seal")
	}
	other, _, _ := NewClaimSecret()
	for name, s := range map[string][]byte{"another secret": other, "no secret": nil, "the seal itself": seal} {
		if Opens(seal, s) {
			t.Errorf("%s opens the seal", name)
		}
	}
}

func TestRevisionSignature(t *testing.T) {
	ca := mustCA(t, "d.test")
	m1, w1 := mustSource(t, ca, mgr("m1")), mustSource(t, ca, wrk("w1"))
	r := Revision{Domain: "d.test", SubDomain: "mgt", Epoch: 7, Seq: 3, Root: []byte("root-hash")}
	s, err := SignRevision(m1, r)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := VerifyRevision(w1, r, s); err != nil || id != mgr("m1") {
		t.Fatalf("VerifyRevision = %v, %v", id, err)
	}
	for name, rr := range map[string]Revision{
		"root":  {r.Domain, r.SubDomain, r.Epoch, r.Seq, []byte("root-hasX")},
		"seq":   {r.Domain, r.SubDomain, r.Epoch, r.Seq + 1, r.Root},
		"epoch": {r.Domain, r.SubDomain, r.Epoch + 1, r.Seq, r.Root},
	} {
		if _, err := VerifyRevision(w1, rr, s); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Errorf("tampered %s: %v", name, err)
		}
	}
	ws, _ := SignRevision(w1, r)
	if _, err := VerifyRevision(m1, r, ws); err == nil || !strings.Contains(err.Error(), "not by a manager") {
		t.Errorf("revision signed by a worker: %v", err)
	}
	rogue := mustSource(t, mustCA(t, "d.test"), mgr("m1"))
	rs, _ := SignRevision(rogue, r)
	if _, err := VerifyRevision(w1, r, rs); err == nil || !strings.Contains(err.Error(), "publisher's certificate") {
		t.Errorf("revision signed under a foreign CA: %v", err)
	}
	if _, err := VerifyRevision(w1, r, RevisionSignature{}); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned revision: %v", err)
	}
}

// TestPurposesAreSeparate: a claim's signature does not verify as a
// revision's over the same bytes, nor the other way round.
func TestPurposesAreSeparate(t *testing.T) {
	ca := mustCA(t, "d.test")
	m1 := mustSource(t, ca, mgr("m1"))
	claim, _ := SignClaim(m1, "d.test", "mgt", "m1", 1, nil)
	r := Revision{Domain: "d.test", SubDomain: "mgt", Epoch: 1}
	var chain [][]byte
	for _, c := range m1.Chain() {
		chain = append(chain, c.Raw)
	}
	if _, err := VerifyRevision(m1, r, RevisionSignature{Chain: chain, Sig: claim}); err == nil {
		t.Error("a claim signature verified as a revision signature")
	}
	rev, _ := SignRevision(m1, r)
	if err := VerifyClaim(m1.Leaf().PublicKey, rev.Sig, "d.test", "mgt", "m1", 1, nil); err == nil {
		t.Error("a revision signature verified as a claim signature")
	}
}

func TestControlSignature(t *testing.T) {
	ca := mustCA(t, "d.test")
	m1 := mustSource(t, ca, mgr("m1"))
	c := Control{Domain: "d.test", From: "m1", To: "w1", Op: "drain", At: time.Unix(1700000000, 5), Nonce: []byte("0123456789abcdef")}
	sig, err := SignControl(m1, c)
	if err != nil {
		t.Fatal(err)
	}
	pub := m1.Leaf().PublicKey
	if err := VerifyControl(pub, sig, c); err != nil {
		t.Fatal(err)
	}
	tamper := func(f func(*Control)) Control { d := c; f(&d); return d }
	for name, cc := range map[string]Control{
		"op":     tamper(func(d *Control) { d.Op = "leave" }),
		"to":     tamper(func(d *Control) { d.To = "w2" }),
		"from":   tamper(func(d *Control) { d.From = "m2" }),
		"domain": tamper(func(d *Control) { d.Domain = "e.test" }),
		"at":     tamper(func(d *Control) { d.At = d.At.Add(time.Nanosecond) }),
		"nonce":  tamper(func(d *Control) { d.Nonce = []byte("0123456789abcdeX") }),
	} {
		if err := VerifyControl(pub, sig, cc); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Errorf("tampered %s: %v", name, err)
		}
	}
	claim, _ := SignClaim(m1, "d.test", "mgt", "m1", 1, nil)
	if err := VerifyControl(pub, claim, c); err == nil {
		t.Error("a claim signature verified as a control request")
	}
}
