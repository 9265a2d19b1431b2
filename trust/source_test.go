package trust

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/testutil"
)

func TestSourceRefusesBadMaterial(t *testing.T) {
	ca, foreign := mustCA(t, "d.test"), mustCA(t, "d.test")
	now := time.Now()
	cases := map[string]struct {
		opts []IssueOption
		ca   *CA
		want string
	}{
		"expired":       {[]IssueOption{ValidBetween(now.Add(-2*time.Hour), now.Add(-time.Hour))}, ca, "expired at " + now.Add(-time.Hour).UTC().Format(time.RFC3339)},
		"not yet valid": {[]IssueOption{ValidBetween(now.Add(time.Hour), now.Add(2*time.Hour))}, ca, "not valid yet: valid from " + now.Add(time.Hour).UTC().Format(time.RFC3339)},
		"foreign CA":    {nil, foreign, "does not chain to the CA file"},
	}
	for name, c := range cases {
		is, err := c.ca.Issue(mgr("m1"), c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = SourceOf(ca, is)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
	a, _ := ca.Issue(mgr("m1"))
	b, _ := ca.Issue(mgr("m2"))
	if _, err := NewSource([]*x509.Certificate{ca.Certificate()}, a.Chain, b.Key); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("mismatched key: %v", err)
	}
}

func TestSourceRefusesToPresentAnExpiredCertificate(t *testing.T) {
	ca := mustCA(t, "d.test")
	src := mustSource(t, ca, mgr("m1"), ValidBetween(time.Now().Add(-time.Minute), time.Now().Add(time.Hour)))
	if _, err := src.GetX509SVID(); err != nil {
		t.Fatal(err)
	}
	src.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := src.GetX509SVID(); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("GetX509SVID after expiry: %v", err)
	}
}

func writeFiles(t *testing.T, dir string, ca *CA, is *Issued) (string, string, string) {
	t.Helper()
	c, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := is.WriteFiles(ca, c, cert, key); err != nil {
		t.Fatal(err)
	}
	return c, cert, key
}

func TestSourceReloadsRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "d.test")
	is1, _ := ca.Issue(mgr("m1"))
	caf, certf, keyf := writeFiles(t, dir, ca, is1)
	src, err := LoadFiles(caf, certf, keyf)
	if err != nil {
		t.Fatal(err)
	}
	if src.Identity() != mgr("m1") {
		t.Fatalf("identity %v", src.Identity())
	}
	gen := src.Generation()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 16)
	go src.Watch(ctx, 10*time.Millisecond, func(err error) {
		select {
		case errs <- err:
		default:
		}
	})

	// A broken key file: the Source reports it and keeps serving m1.
	if err := os.WriteFile(keyf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "key.pem holds no PEM block") {
			t.Fatalf("reload error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload error reported for a broken key file")
	}
	if src.Identity() != mgr("m1") || src.Generation() != gen {
		t.Fatal("a failed reload changed the material")
	}

	// Rotation to a new CA: the new bundle holds both CAs, the node a
	// certificate from the new one.
	ca2 := mustCA(t, "d.test")
	is2, _ := ca2.Issue(mgr("m1"))
	bundle := append(ca.BundlePEM(), ca2.BundlePEM()...)
	os.WriteFile(caf, bundle, 0o644)
	os.WriteFile(certf, is2.CertPEM(), 0o644)
	os.WriteFile(keyf, is2.KeyPEM(), 0o600)
	testutil.WaitFor(t, 10*time.Second, "rotated certificate loaded", func() bool {
		return src.Leaf().Equal(is2.Chain[0])
	})
	if src.Generation() == gen {
		t.Fatal("generation did not change on rotation")
	}
	// During the rotation both CAs are trusted: a node still on the old
	// CA's certificate (with the new bundle) and the rotated one verify
	// each other both ways.
	oldIs, _ := ca.Issue(wrk("w1"))
	old, err := NewSource([]*x509.Certificate{ca.Certificate(), ca2.Certificate()}, oldIs.Chain, oldIs.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verifyPair(t, old, src); err != nil {
		t.Fatalf("the rotated node refuses a node of the old CA: %v", err)
	}
	if _, _, err := verifyPair(t, src, old); err != nil {
		t.Fatalf("a node of the old CA refuses the rotated node: %v", err)
	}
}

// verifyPair runs a real proof: server serves, client verifies.
func verifyPair(t *testing.T, server, client *Source) (Identity, *x509.Certificate, error) {
	t.Helper()
	lis := listen(t)
	s := ServeIdentity(lis, server)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Verify(ctx, lis.Addr().String(), client)
}

func writeAtomic(p string, b []byte) error {
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}
