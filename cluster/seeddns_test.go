package cluster

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/carbonkit/carbon/role"
)

// dnsStub is a DNS server on 127.0.0.1 that answers A queries for the
// names it holds, as a cluster DNS answers for a headless Service.
type dnsStub struct {
	srv  *dns.Server
	addr string

	mu      sync.Mutex
	records map[string][]string // fqdn -> IPv4 addresses
	queries map[string]int
}

func newDNSStub(t *testing.T) *dnsStub {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsStub{addr: pc.LocalAddr().String(), records: map[string][]string{}, queries: map[string]int{}}
	started := make(chan struct{})
	d.srv = &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	go d.srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { d.srv.Shutdown() })
	return d
}

func (d *dnsStub) set(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[dns.Fqdn(name)] = ips
}

func (d *dnsStub) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[dns.Fqdn(name)]
}

func (d *dnsStub) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	for _, q := range r.Question {
		ips, ok := d.records[q.Name]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype == dns.TypeA {
			d.queries[q.Name]++
		}
		for _, ip := range ips {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.ParseIP(ip).To4(),
				})
			}
		}
	}
	d.mu.Unlock()
	w.WriteMsg(m)
}

// resolver returns a Resolver that asks only this stub, never the
// system's DNS.
func (d *dnsStub) resolver() Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, network, d.addr)
	}}
}

// seedName is the stub's stand-in for a headless Service's name.
const seedName = "carbon-workers.carbon.svc.cluster.local"

// loopbackNode joins a node on ip:port (an address of 127.0.0.0/8, as a
// pod has its own IP and every pod the same gossip port) with seeds, and
// closes it at the end of the test.
func loopbackNode(t *testing.T, name, ip string, port int, res Resolver, seeds ...string) *Node {
	t.Helper()
	cfg := local("k8s", role.Worker)
	cfg.NodeName = name
	cfg.BindAddr = net.JoinHostPort(ip, strconv.Itoa(port))
	cfg.Seeds = seeds
	cfg.Resolver = res
	return start(t, cfg)
}

// sees reports whether n sees a member called name alive at addr.
func sees(n *Node, name, addr string) bool {
	for _, m := range n.Members() {
		if m.Name == name {
			return m.Status == StatusAlive && m.Addr == addr
		}
	}
	return false
}

// freeLoopbackPort returns a port free for TCP and UDP on every ip.
func freeLoopbackPort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 50 {
		port := freePort(t)
		ok := true
		for _, ip := range ips {
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			u, err := net.ListenPacket("udp", addr)
			l.Close()
			if err != nil {
				ok = false
				break
			}
			u.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on all of", ips)
	return 0
}

// TestSeedNameFollowedAfterMembersGone: a node that joined through a seed
// name and then lost every member it knew resolves the name again and
// joins the pod it now lists, as after a partition or when every old pod
// of a headless Service was replaced.
func TestSeedNameFollowedAfterMembersGone(t *testing.T) {
	stub := newDNSStub(t)
	const ipA, ipB, ipC = "127.0.0.10", "127.0.0.11", "127.0.0.12"
	port := freeLoopbackPort(t, ipA, ipB, ipC)
	seed := net.JoinHostPort(seedName, strconv.Itoa(port))
	addr := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

	stub.set(seedName, ipB)
	b := loopbackNode(t, "b", ipB, port, nil)
	a := loopbackNode(t, "a", ipA, port, stub.resolver(), seed)
	waitFor(t, 10*time.Second, "a to see b through the seed name", func() bool { return sees(a, "b", addr(ipB)) })
	c := loopbackNode(t, "c", ipC, port, nil) // a pod the name does not list yet

	// b's pod goes away; only then does the name list c. a is alone and
	// only a fresh lookup can bring it to c.
	b.Close()
	waitFor(t, 10*time.Second, "a to see b gone", func() bool { return aliveCount(a) == 1 })
	before := stub.count(seedName)
	stub.set(seedName, ipC)
	waitFor(t, 15*time.Second, "a to join c, the name's new address", func() bool {
		return sees(a, "c", addr(ipC)) && sees(c, "a", addr(ipA))
	})
	if stub.count(seedName) <= before {
		t.Fatalf("a joined c without looking the seed name up again (%d lookups before, %d after)", before, stub.count(seedName))
	}
}

// TestSeedSweepMergesGroupsFormedApart: two groups that formed apart, each
// with contact, merge once the seed name lists a member of the other (pods
// of a StatefulSet started in parallel, each seeing only part of the
// headless Service's records).
func TestSeedSweepMergesGroupsFormedApart(t *testing.T) {
	stub := newDNSStub(t)
	const ipA, ipB, ipC, ipD = "127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"
	port := freeLoopbackPort(t, ipA, ipB, ipC, ipD)
	seed := net.JoinHostPort(seedName, strconv.Itoa(port))
	addr := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

	stub.set(seedName, ipB)
	b := loopbackNode(t, "b", ipB, port, nil)
	a := loopbackNode(t, "a", ipA, port, stub.resolver(), seed)
	c := loopbackNode(t, "c", ipC, port, nil)
	d := loopbackNode(t, "d", ipD, port, nil, addr(ipC))
	all := []*Node{a, b, c, d}
	waitFor(t, 10*time.Second, "two groups of two", converged(all, 2))

	stub.set(seedName, ipB, ipD)
	waitFor(t, 15*time.Second, "the groups to merge into four", converged(all, 4))
}

// TestRestartAtNewAddressRejoins: a pod that restarts under the same name
// (a StatefulSet's pod) comes back with a new IP; its peers must take the
// new address for the name, whether the old process left or crashed.
func TestRestartAtNewAddressRejoins(t *testing.T) {
	cases := []struct {
		name    string
		crash   bool
		profile Profile
		within  time.Duration
		net     string // 127.0.<net>.x
	}{
		{"left", false, ProfileLocal, 15 * time.Second, "30"},
		{"crashed", true, ProfileLocal, 15 * time.Second, "40"},
		// Serf's LAN timings, as in production: failure detection takes
		// seconds, then the next exchange (reclaim.go) must carry the new
		// address; memberlist's own periodic one would take over 30 s.
		{"crashed-lan", true, ProfileLAN, 25 * time.Second, "50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			crash := tc.crash
			ipA, ipOld, ipNew := "127.0."+tc.net+".1", "127.0."+tc.net+".2", "127.0."+tc.net+".3"
			port := freeLoopbackPort(t, ipA, ipOld, ipNew)
			addr := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
			node := func(name, ip string, seeds ...string) *Node {
				cfg := local("k8s", role.Worker)
				cfg.NodeName, cfg.Profile, cfg.Seeds = name, tc.profile, seeds
				cfg.BindAddr = addr(ip)
				return start(t, cfg)
			}
			a := node("a", ipA)
			old := node("w-0", ipOld, addr(ipA))
			waitFor(t, 10*time.Second, "a to see w-0", func() bool { return sees(a, "w-0", addr(ipOld)) })

			if crash {
				old.Close() // a still believes w-0 alive at its old address
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := old.Leave(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
			}
			began := time.Now()
			again := node("w-0", ipNew, addr(ipA))
			waitFor(t, tc.within, "a to see w-0 alive at its new address, and w-0 to see a", func() bool {
				return sees(a, "w-0", addr(ipNew)) && sees(again, "a", addr(ipA))
			})
			t.Logf("w-0 seen at its new address %v after its restart", time.Since(began).Round(time.Millisecond))
			select {
			case <-again.Done():
				t.Fatal("the restarted node shut down")
			default:
			}
		})
	}
}
