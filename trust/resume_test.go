package trust

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
)

// TestNoResumptionPastRevocation: a client that connected once does not
// get back in by resuming its TLS session after the server stopped
// trusting its CA (crypto/tls skips VerifyPeerCertificate on resumption).
func TestNoResumptionPastRevocation(t *testing.T) {
	ca1, ca2 := mustCA(t, "d.test"), mustCA(t, "d.test")
	dir := t.TempDir()
	m1, _ := ca1.Issue(mgr("m1"))
	caf, cf, kf := filepath.Join(dir, "ca"), filepath.Join(dir, "cert"), filepath.Join(dir, "key")
	if err := m1.WriteFiles(ca1, caf, cf, kf); err != nil {
		t.Fatal(err)
	}
	srv, err := LoadFiles(caf, cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	w1, _ := ca1.Issue(wrk("w1"))
	cli, err := NewSource([]*x509.Certificate{ca1.Certificate(), ca2.Certificate()}, w1.Chain, w1.Key)
	if err != nil {
		t.Fatal(err)
	}
	scfg := ServerTLSConfig(srv, AuthorizeDomain("d.test"))
	ccfg := ClientTLSConfig(cli, AuthorizeDomain("d.test"))
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	lis := listen(t)
	defer lis.Close()
	handshake := func() error {
		errc := make(chan error, 1)
		go func() {
			c, err := lis.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			tc := tls.Server(c, scfg)
			err = tc.Handshake()
			if err == nil {
				var b [1]byte
				if _, err = tc.Read(b[:]); err == nil { // the client's first write, or its alert
					_, err = tc.Write(b[:])
				}
			}
			errc <- err
		}()
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			return err
		}
		tc := tls.Client(c, ccfg)
		if err := tc.Handshake(); err == nil {
			var b [1]byte
			tc.Write(b[:])
			tc.Read(b[:]) // takes in the session ticket the server sent, if any
		}
		serr := <-errc
		c.Close()
		return serr
	}
	if err := handshake(); err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	// The server now trusts only the new CA.
	m1b, _ := ca2.Issue(mgr("m1"))
	writeFile := func(p string, b []byte) {
		if err := writeAtomic(p, b); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(caf, ca2.BundlePEM())
	writeFile(kf, m1b.KeyPEM())
	writeFile(cf, m1b.CertPEM())
	if ok, err := srv.Reload(); !ok || err != nil {
		t.Fatalf("reload: %v %v", ok, err)
	}
	if err := handshake(); err == nil {
		t.Fatal("a client of the removed CA got in again (session resumed)")
	}
}
