package cluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

var trustKey = []byte("0123456789abcdef")

// trusted is a domain with a trust root: its CA and a config per node
// with a certificate for its role.
type trusted struct {
	t      *testing.T
	domain string
	ca     *trust.CA
}

func newTrusted(t *testing.T, domain string) *trusted {
	return &trusted{t: t, domain: domain, ca: trusttest.CA(t, domain)}
}

func (d *trusted) source(id trust.Identity, opts ...trust.IssueOption) *trust.Source {
	d.t.Helper()
	return trusttest.Source(d.t, d.ca, id, opts...)
}

func (d *trusted) config(name string, r role.Role, seeds ...string) Config {
	c := local(d.domain, r)
	c.Key, c.Seeds = trustKey, seeds
	sub, tr := SubDomainWorker, trust.RoleWorker
	if r == role.Manager {
		sub, tr = SubDomainManager, trust.RoleManager
	}
	c.Trust = d.source(trust.Identity{Domain: d.domain, SubDomain: sub, Role: tr, Name: name})
	return c
}

// countingListener counts the connections accepted: the proofs a rogue's
// identity endpoint was asked for.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// watchActive records every active manager of "mgt" any node's views name
// until the test ends.
func watchActive(t *testing.T, nodes []*Node) func() []string {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range n.Watch(ctx) {
				if a, ok := v.Active("mgt"); ok {
					mu.Lock()
					seen[n.Name()+" sees "+a.Name] = true
					mu.Unlock()
				}
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for s := range seen {
			out = append(out, s)
		}
		return out
	}
}

// TestRogueManagerNeverElected: with a trust root, a process holding the
// gossip key that tags itself manager with a higher claim than the real
// active, with no certificate (a) or with a worker's certificate and a
// claim signed by the worker's key (b), is never elected on any node, is
// shown unverified, and the real active keeps writing.
func TestRogueManagerNeverElected(t *testing.T) {
	for _, withCert := range []bool{false, true} {
		t.Run(fmt.Sprintf("certificate=%v", withCert), func(t *testing.T) {
			d := newTrusted(t, "trust.test")
			m1 := start(t, d.config("m1", role.Manager))
			m2 := start(t, d.config("m2", role.Manager, addrOf(m1)))
			w1 := start(t, d.config("w1", role.Worker, addrOf(m1)))
			nodes := []*Node{m1, m2, w1}
			waitFor(t, 10*time.Second, "3 verified members", func() bool {
				for _, n := range nodes {
					for _, m := range n.Members() {
						if m.Trust != TrustVerified {
							return false
						}
					}
					if len(n.Members()) != 3 {
						return false
					}
				}
				return true
			})
			waitFor(t, 10*time.Second, "m1 writable", m1.Writable)
			epoch := m1.Epoch()
			seen := watchActive(t, nodes)

			claim := epoch + 5<<epochDiscBits // far above, and still a valid claim
			tg := map[string]string{
				tags.KeyDomain: d.domain, tags.KeyRole: tags.RoleManager, tags.KeySubDomain: "mgt",
				tags.KeyState: tags.StateServing, tags.KeyClaim: tags.EncodeEpoch(claim),
			}
			var lis *countingListener
			if withCert {
				// A stolen worker certificate, presented by the rogue's own
				// identity endpoint, and a claim signed with its key.
				ws := d.source(trust.Identity{Domain: d.domain, SubDomain: "mgt", Role: trust.RoleWorker, Name: "rogue"})
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				lis = &countingListener{Listener: l}
				srv := trust.ServeIdentity(lis, ws)
				t.Cleanup(func() { srv.Close() })
				secret, seal, _ := trust.NewClaimSecret()
				sig, _ := trust.SignClaim(ws, d.domain, "mgt", "rogue", claim, seal)
				tg[tags.KeyIdentity] = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
				tg[tags.KeyClaimSig] = tags.EncodeSignedClaim(claim, seal, sig)
				tg[tags.KeyClaimKey] = base64.RawStdEncoding.EncodeToString(secret)
			}
			rogue(t, "rogue", trustKey, tg, addrOf(m1))
			waitFor(t, 10*time.Second, "the rogue in every view, unverified", func() bool {
				for _, n := range nodes {
					m, ok := n.View().Member("rogue")
					if !ok || m.Trust != TrustUnverified || m.Routable() || m.Claim != 0 {
						return false
					}
				}
				return true
			})
			if lis != nil {
				// Every node tried the rogue's proof and refused it.
				waitFor(t, 10*time.Second, "3 proofs asked of the rogue", func() bool { return lis.n.Load() >= 3 })
			}
			// Give the forged claim every chance: a few probe rounds.
			deadline := time.Now().Add(time.Second)
			waitFor(t, 5*time.Second, "a second of gossip", func() bool { return time.Now().After(deadline) })
			for _, n := range nodes {
				a, ok := n.Active("mgt")
				if !ok || a.Name != "m1" || a.Claim != epoch {
					t.Errorf("%s: active %+v, want m1 at epoch %d", n.Name(), a, epoch)
				}
			}
			if !m1.Writable() || m1.Epoch() != epoch {
				t.Errorf("m1 writable=%v epoch=%d, want true, %d", m1.Writable(), m1.Epoch(), epoch)
			}
			for _, s := range seen() {
				if strings.HasSuffix(s, " rogue") {
					t.Errorf("a view named the rogue active: %s", s)
				}
			}
			// Nor would the forged claim stop m1 renewing its lease after
			// a lapse (the lease reads serf's members, before the loop).
			if m1.higherClaim() {
				t.Error("m1's lease would take the rogue's claim for a higher one")
			}
		})
	}
}

// TestTrustConfigMismatchRefused: Join refuses a config that the
// certificate does not back, naming the field.
func TestTrustConfigMismatchRefused(t *testing.T) {
	d := newTrusted(t, "trust.test")
	cases := map[string]func(*Config){
		"worker certificate, manager role": func(c *Config) {
			c.Trust = d.source(trust.Identity{Domain: d.domain, SubDomain: "mgt", Role: trust.RoleWorker, Name: "x"})
		},
		"other name": func(c *Config) { c.NodeName = "someone-else" },
		"other domain": func(c *Config) {
			o := newTrusted(t, "other.test")
			c.Trust = o.source(trust.Identity{Domain: "other.test", SubDomain: "mgt", Role: trust.RoleManager, Name: "x"})
		},
	}
	want := map[string]string{
		"worker certificate, manager role": `grants role "worker", the node is configured as "manager"`,
		"other name":                       `NodeName: "someone-else", but the certificate`,
		"other domain":                     `is for domain "other.test"`,
	}
	for name, mod := range cases {
		c := d.config("x", role.Manager)
		c.NodeName = ""
		mod(&c)
		n, err := Join(context.Background(), c)
		if err == nil {
			n.Close()
			t.Errorf("%s: Join succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: %v, want it to say %q", name, err, want[name])
		}
	}
	// NodeName defaults to the certificate's name.
	c := d.config("named-by-cert", role.Worker)
	c.NodeName = ""
	n := start(t, c)
	if n.Name() != "named-by-cert" {
		t.Errorf("NodeName = %q, want the certificate's", n.Name())
	}
}

// TestExpiredCertificateDemotes: the active manager's certificate expires;
// it stops writing, the others stop counting it, and the stand-by (with a
// valid certificate) takes over.
func TestExpiredCertificateDemotes(t *testing.T) {
	d := newTrusted(t, "trust.test")
	c1 := d.config("m1", role.Manager)
	c1.Trust = d.source(trust.Identity{Domain: d.domain, SubDomain: "mgt", Role: trust.RoleManager, Name: "m1"},
		trust.ValidBetween(time.Now().Add(-time.Minute), time.Now().Add(3*time.Second)))
	m1 := start(t, c1)
	m2 := start(t, d.config("m2", role.Manager, addrOf(m1)))
	waitFor(t, 10*time.Second, "m1 writable", m1.Writable)
	waitFor(t, 15*time.Second, "m1 demoted and m2 writable after m1's certificate expired", func() bool {
		return !m1.Writable() && m2.Writable()
	})
	if time.Now().Before(c1.Trust.Leaf().NotAfter) {
		t.Fatal("m1 was demoted before its certificate expired")
	}
	if m, _ := m2.View().Member("m1"); m.Trust != TrustUnverified {
		t.Errorf("m2 sees m1 %v, want unverified", m.Trust)
	}
}

// TestRotationWithoutElection rotates the CA and every node certificate
// across a live domain through the files: no election, the active never
// stops writing, and every member stays verified at the end.
func TestRotationWithoutElection(t *testing.T) {
	d := newTrusted(t, "trust.test")
	dir := t.TempDir()
	names := []string{"m1", "m2", "w1"}
	ids := map[string]trust.Identity{
		"m1": {Domain: d.domain, SubDomain: "mgt", Role: trust.RoleManager, Name: "m1"},
		"m2": {Domain: d.domain, SubDomain: "mgt", Role: trust.RoleManager, Name: "m2"},
		"w1": {Domain: d.domain, SubDomain: "worker", Role: trust.RoleWorker, Name: "w1"},
	}
	files := func(name string) (string, string, string) {
		return dir + "/" + name + "-ca.pem", dir + "/" + name + "-cert.pem", dir + "/" + name + "-key.pem"
	}
	var nodes []*Node
	for i, name := range names {
		is, err := d.ca.Issue(ids[name])
		if err != nil {
			t.Fatal(err)
		}
		caf, cf, kf := files(name)
		if err := is.WriteFiles(d.ca, caf, cf, kf); err != nil {
			t.Fatal(err)
		}
		src, err := trust.LoadFiles(caf, cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		r := role.Manager
		if name == "w1" {
			r = role.Worker
		}
		c := local(d.domain, r)
		c.Key, c.Trust = trustKey, src
		if i > 0 {
			c.Seeds = []string{addrOf(nodes[0])}
		}
		nodes = append(nodes, start(t, c))
	}
	m1 := nodes[0]
	allVerified := func() bool {
		for _, n := range nodes {
			ms := n.Members()
			if len(ms) != 3 {
				return false
			}
			for _, m := range ms {
				if m.Trust != TrustVerified {
					return false
				}
			}
		}
		return true
	}
	waitFor(t, 10*time.Second, "3 verified members", allVerified)
	waitFor(t, 10*time.Second, "m1 writable", m1.Writable)
	epoch := m1.Epoch()
	seen := watchActive(t, nodes)
	var lost atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				if !m1.Writable() {
					lost.Add(1)
				}
			}
		}
	}()

	ca2, err := trust.NewCA(d.domain)
	if err != nil {
		t.Fatal(err)
	}
	both := append(d.ca.BundlePEM(), ca2.BundlePEM()...)
	// 1. Every node trusts both CAs.
	for _, name := range names {
		caf, _, _ := files(name)
		writeFile(t, caf, both)
	}
	// 2. New certificates from the new CA, node by node.
	for _, name := range names {
		is, err := ca2.Issue(ids[name])
		if err != nil {
			t.Fatal(err)
		}
		_, cf, kf := files(name)
		writeFile(t, kf, is.KeyPEM())
		writeFile(t, cf, is.CertPEM())
	}
	for i, n := range nodes {
		waitFor(t, 10*time.Second, names[i]+" on the new CA's certificate", func() bool {
			return n.TrustSource().Leaf().Issuer.SerialNumber == ca2.Certificate().Subject.SerialNumber
		})
	}
	// 3. The old CA goes.
	for _, name := range names {
		caf, _, _ := files(name)
		writeFile(t, caf, ca2.BundlePEM())
	}
	waitFor(t, 10*time.Second, "every node reloaded the new CA file", func() bool {
		for _, n := range nodes {
			src := n.TrustSource()
			b, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString(d.domain))
			if err != nil || len(b.X509Authorities()) != 1 || !b.X509Authorities()[0].Equal(ca2.Certificate()) {
				return false
			}
		}
		return true
	})
	waitFor(t, 20*time.Second, "3 verified members after the rotation", allVerified)
	close(stop)
	<-done
	if l := lost.Load(); l > 0 {
		t.Errorf("m1 was not writable at %d samples during the rotation", l)
	}
	if m1.Epoch() != epoch {
		t.Errorf("epoch %d after the rotation, %d before: an election ran", m1.Epoch(), epoch)
	}
	for _, s := range seen() {
		if !strings.HasSuffix(s, " m1") {
			t.Errorf("another active during the rotation: %s", s)
		}
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestNameTakeoverCannotEvict: a rogue that joins under the name of the
// live, verified active manager (serf resolves name conflicts by a vote)
// does not evict it: the real m1 keeps running and stays active at its
// own address on every node.
func TestNameTakeoverCannotEvict(t *testing.T) {
	d := newTrusted(t, "trust.test")
	m1 := start(t, d.config("m1", role.Manager))
	m2 := start(t, d.config("m2", role.Manager, addrOf(m1)))
	w1 := start(t, d.config("w1", role.Worker, addrOf(m1)))
	nodes := []*Node{m1, m2, w1}
	waitFor(t, 10*time.Second, "3 members", converged(nodes, 3))
	waitFor(t, 10*time.Second, "m1 writable", m1.Writable)
	addr := addrOf(m1)
	tg := map[string]string{tags.KeyDomain: d.domain, tags.KeyRole: tags.RoleManager, tags.KeySubDomain: "mgt",
		tags.KeyState: tags.StateServing, tags.KeyClaim: tags.EncodeEpoch(m1.Epoch() + 5<<epochDiscBits)}
	r := rogue(t, "m1", trustKey, tg, addrOf(m2))
	// The rogue's own serf sees the conflict too; wait until the domain
	// has answered its alive messages (m2 knows of it by then).
	waitFor(t, 10*time.Second, "the rogue's join answered", func() bool { return r.NumNodes() >= 2 })
	deadline := time.Now().Add(2 * time.Second)
	waitFor(t, 5*time.Second, "two seconds of gossip", func() bool { return time.Now().After(deadline) })
	select {
	case <-m1.Done():
		t.Fatal("m1 was shut down by the name conflict")
	default:
	}
	for _, n := range nodes {
		m, ok := n.View().Member("m1")
		if !ok || m.Addr != addr || m.Trust != TrustVerified || m.Status != StatusAlive {
			t.Errorf("%s sees m1 as %+v, want alive and verified at %s", n.Name(), m, addr)
		}
		if a, _ := n.Active("mgt"); a.Name != "m1" || a.Addr != addr {
			t.Errorf("%s: active %s at %s", n.Name(), a.Name, a.Addr)
		}
	}
	if !m1.Writable() {
		t.Error("m1 is no longer writable")
	}
}
