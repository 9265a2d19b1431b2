package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// trustedPair starts m1, m2 and w1 with a trust root and returns them once
// every member is verified, m1 is writable and every node holds m2's
// signed claim for the epoch it would claim next.
func trustedPair(t *testing.T) (d *trusted, m1, m2, w1 *Node) {
	d = newTrusted(t, "signed.test")
	m1 = start(t, d.config("m1", role.Manager))
	m2 = start(t, d.config("m2", role.Manager, addrOf(m1)))
	w1 = start(t, d.config("w1", role.Worker, addrOf(m1)))
	waitFor(t, 10*time.Second, "m1 active and writable, m2's next claim signed and seen by all", func() bool {
		if !m1.Writable() {
			return false
		}
		m2.mu.Lock()
		value, next := m2.signed.value, m2.signed.epoch
		m2.mu.Unlock()
		if want, _ := nextEpoch(m1.Epoch(), "m2"); next != want {
			return false
		}
		for _, n := range []*Node{m1, m2, w1} {
			if a, ok := n.Active("mgt"); !ok || a.Name != "m1" || a.Claim != m1.Epoch() {
				return false
			}
			if n == m2 {
				continue
			}
			if m, ok := n.View().Member("m2"); !ok || m.Trust != TrustVerified || m.claimSig != value {
				return false
			}
		}
		return true
	})
	return d, m1, m2, w1
}

// TestPreSignedClaimIsNoClaim: a stand-by's signed claim, published ahead
// of its claim, makes it active only with the secret that opens its seal:
// without a secret, with a wrong one, with the active's, for another epoch
// or signed by another key, the claim reads 0. The right secret makes it
// count, so the check is not vacuous.
func TestPreSignedClaimIsNoClaim(t *testing.T) {
	_, m1, m2, w1 := trustedPair(t)
	pre, _ := w1.View().Member("m2")
	if pre.rawClaim != 0 || pre.claimKey != "" {
		t.Fatalf("m2 is a stand-by but its tags claim %d, secret %q", pre.rawClaim, pre.claimKey)
	}
	m2.mu.Lock()
	epoch, secret := m2.signed.epoch, m2.signed.key
	m2.mu.Unlock()
	activeSecret := m1.serf.LocalMember().Tags[tags.KeyClaimKey]
	if activeSecret == "" {
		t.Fatal("the active m1 reveals no secret")
	}
	other, _, _ := trust.NewClaimSecret()
	_, sealM2, _, err := tags.DecodeSignedClaim(pre.claimSig)
	if err != nil {
		t.Fatal(err)
	}
	w1key := w1.cfg.Trust
	sigByWorker, _ := trust.SignClaim(w1key, "signed.test", "mgt", "m2", epoch, sealM2)

	claimWith := func(f func(m *Member)) uint64 {
		m := pre
		m.rawClaim, m.claimKey = epoch, secret
		f(&m)
		v := &verifier{n: w1, verdicts: map[string]verdict{}, accepted: map[string]uint64{}, badClaims: map[string]string{},
			pending: map[string]proofKey{}, running: map[string]proofKey{}}
		vd := verdict{name: "m2", pub: m2.cfg.Trust.Leaf().PublicKey, notAfter: m2.cfg.Trust.Leaf().NotAfter}
		v.verdicts["m2"] = vd
		v.annotateClaim(&m, vd)
		return m.Claim
	}
	for name, f := range map[string]func(m *Member){
		"no secret":             func(m *Member) { m.claimKey = "" },
		"a wrong secret":        func(m *Member) { m.claimKey = base64.RawStdEncoding.EncodeToString(other) },
		"the active's secret":   func(m *Member) { m.claimKey = activeSecret },
		"not base64":            func(m *Member) { m.claimKey = "!!" },
		"another epoch":         func(m *Member) { m.rawClaim = epoch + 1<<epochDiscBits },
		"no signed claim":       func(m *Member) { m.claimSig = "" },
		"a malformed one":       func(m *Member) { m.claimSig = "zz" },
		"signed by another key": func(m *Member) { m.claimSig = tags.EncodeSignedClaim(epoch, sealM2, sigByWorker) },
	} {
		if c := claimWith(f); c != 0 {
			t.Errorf("m2's signed claim with %s counts as a claim to %d", name, c)
		}
	}
	if c := claimWith(func(*Member) {}); c != epoch {
		t.Fatalf("m2's signed claim with its own secret reads %d, want %d", c, epoch)
	}
}

// TestHandOverSignsAndChecksNothing: in a planned hand-over the new active
// takes the claim it signed ahead, unchanged, and reveals its secret; the
// draining active publishes no new signed claim. So no member signs or
// checks a signature while the hand-over runs. Once back, the old active
// signs its own next claim ahead.
func TestHandOverSignsAndChecksNothing(t *testing.T) {
	_, m1, m2, w1 := trustedPair(t)
	before := m2.serf.LocalMember().Tags[tags.KeyClaimSig]
	epoch, seal, _, err := tags.DecodeSignedClaim(before)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m1.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "m2 writable", m2.Writable)
	if got := m2.Epoch(); got != epoch {
		t.Fatalf("m2 claimed %d, not the epoch it signed ahead (%d)", got, epoch)
	}
	after := m2.serf.LocalMember().Tags
	if after[tags.KeyClaimSig] != before {
		t.Errorf("m2 signed again to claim: %q, before %q", after[tags.KeyClaimSig], before)
	}
	secret, err := base64.RawStdEncoding.DecodeString(after[tags.KeyClaimKey])
	if err != nil || !trust.Opens(seal, secret) {
		t.Errorf("m2's revealed secret %q does not open its seal (%v)", after[tags.KeyClaimKey], err)
	}
	if c := m1.serf.LocalMember().Tags[tags.KeyClaimSig]; c != "" {
		t.Errorf("the draining m1 published a signed claim %q", c)
	}
	waitFor(t, 10*time.Second, "w1 sees m2 active at its epoch", func() bool {
		a, ok := w1.Active("mgt")
		return ok && a.Name == "m2" && a.Claim == epoch
	})
	m1.Ready(context.Background())
	want, _ := nextEpoch(epoch, "m1")
	waitFor(t, 10*time.Second, "m1 serving, with its next claim signed ahead", func() bool {
		e, _, _, err := tags.DecodeSignedClaim(m1.serf.LocalMember().Tags[tags.KeyClaimSig])
		return err == nil && e == want && m1.serf.LocalMember().Tags[tags.KeyClaimKey] == ""
	})
}

// TestClaimTagsFitAtTheLimit: Join leaves room for the claim tags a
// trusted manager adds later. With the largest Properties Join accepts,
// the manager still claims and gossips its claim, signed claim and secret
// within memberlist's 512 bytes; one byte more is refused at Join.
func TestClaimTagsFitAtTheLimit(t *testing.T) {
	d := newTrusted(t, "room.test")
	cfg := func(size int) Config {
		c := d.config("m1", role.Manager)
		c.Properties = map[string]string{"blob": strings.Repeat("x", size)}
		return c
	}
	lo, hi := 0, tags.MaxSize // Join accepts lo, refuses hi
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		n, err := Join(context.Background(), cfg(mid))
		if err == nil {
			n.Close()
			lo = mid
		} else if errors.Is(err, ErrTagsTooLarge) {
			hi = mid
		} else {
			t.Fatal(err)
		}
	}
	m1 := start(t, cfg(lo))
	waitFor(t, 10*time.Second, "m1 gossiping its claim, signed claim and secret", func() bool {
		lt := m1.serf.LocalMember().Tags
		return m1.Writable() && lt[tags.KeyClaim] != "" && lt[tags.KeyClaimSig] != "" && lt[tags.KeyClaimKey] != ""
	})
	if size := tags.Size(m1.serf.LocalMember().Tags); size > tags.MaxSize {
		t.Fatalf("tags are %d bytes, over %d", size, tags.MaxSize)
	}
	if lo < 200 {
		t.Fatalf("Join refuses %d bytes of properties on a trusted manager: the reserve is too large", lo+1)
	}
}
