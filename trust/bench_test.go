package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// BenchmarkVerify measures one proof of identity over 127.0.0.1 against
// its baseline in the same run: a plain mutual-TLS 1.3 handshake with the
// same certificates and the standard library's chain check only.
func BenchmarkVerify(b *testing.B) {
	ca := mustCA(b, "d.test")
	m1, w1 := mustSource(b, ca, mgr("m1")), mustSource(b, ca, wrk("w1"))
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := ServeIdentity(lis, m1)
	defer srv.Close()
	addr := lis.Addr().String()

	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	cert := func(s *Source) tls.Certificate {
		return tls.Certificate{Certificate: [][]byte{s.Leaf().Raw}, PrivateKey: s.signer(), Leaf: s.Leaf()}
	}
	plis, _ := net.Listen("tcp", "127.0.0.1:0")
	defer plis.Close()
	scfg := &tls.Config{Certificates: []tls.Certificate{cert(m1)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	go func() {
		for {
			c, err := plis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, scfg)
				if tc.Handshake() == nil {
					var b [1]byte
					tc.Read(b[:])
				}
			}()
		}
	}()
	// The baseline skips hostname checks (the certificates name no host)
	// but verifies the chain, as Verify does.
	ccfg := &tls.Config{Certificates: []tls.Certificate{cert(w1)}, MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}}
	plain := func() error {
		c, err := net.Dial("tcp", plis.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		return tls.Client(c, ccfg).Handshake()
	}
	ctx := context.Background()
	var tPlain, tOurs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := plain(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, _, err := Verify(ctx, addr, w1); err != nil {
			b.Fatal(err)
		}
		tOurs += time.Since(t1)
		tPlain += t1.Sub(t0)
	}
	b.ReportMetric(float64(tOurs.Microseconds())/float64(b.N), "verify_us")
	b.ReportMetric(float64(tPlain.Microseconds())/float64(b.N), "plain_tls_us")
	b.ReportMetric(float64(tOurs)/float64(tPlain), "x_plain_tls")
}

// BenchmarkVerifyClaim is the cost of checking one claim signature, paid
// once per claim a node sees, ahead of the claim (then cached with it).
func BenchmarkVerifyClaim(b *testing.B) {
	ca := mustCA(b, "d.test")
	m1 := mustSource(b, ca, mgr("m1"))
	_, seal, _ := NewClaimSecret()
	sig, _ := SignClaim(m1, "d.test", "mgt", "m1", 42, seal)
	pub := m1.Leaf().PublicKey
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := VerifyClaim(pub, sig, "d.test", "mgt", "m1", 42, seal); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenClaim is the cost of taking a claim whose signature was
// checked ahead: opening its seal with the revealed secret.
func BenchmarkOpenClaim(b *testing.B) {
	secret, seal, _ := NewClaimSecret()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !Opens(seal, secret) {
			b.Fatal("the secret does not open its seal")
		}
	}
}
