package nginx

import (
	"io"
	"log"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// TestUnverifiedManagerNeverUpstream: with a trust root, a process with
// the gossip key that tags itself the active manager, with an HTTP
// endpoint, never appears in the managers' upstream; the verified active
// does, as primary.
func TestUnverifiedManagerNeverUpstream(t *testing.T) {
	ca := trusttest.CA(t, domain)
	withCert := func(sub, r, name string) func(*cluster.Config) {
		return func(c *cluster.Config) {
			c.Trust = trusttest.Member(t, ca, sub, r, name)
			c.Profile = cluster.ProfileLocal
		}
	}
	m1 := member(t, "m1", role.Manager, startBackend(t, "m1"), nil, withCert("mgt", trust.RoleManager, "m1"))
	obs := join(t, cluster.Config{Domain: domain, Observer: true, BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal,
		Seeds: []string{m1.Self().Addr}, Logger: testLogger(), Trust: trusttest.Member(t, ca, "lb", trust.RoleObserver, "observer")})
	c, err := New(obs, Config{Upstreams: []UpstreamSpec{{Name: "managers", SubDomain: "mgt"}}, Writer: &countingWriter{}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	waitServers(t, c, "managers", "m1")

	rogueHTTP := startBackend(t, "rogue")
	sc := serf.DefaultConfig()
	sc.NodeName = "rogue"
	sc.Tags = map[string]string{tags.KeyDomain: domain, tags.KeyRole: tags.RoleManager, tags.KeySubDomain: "mgt",
		tags.KeyState: tags.StateServing, tags.KeyClaim: tags.EncodeEpoch(m1.Epoch() + 5<<16),
		tags.KeyEndpoints: tags.EncodeMap(map[string]string{"http": rogueHTTP.addr}, "")}
	sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	sc.MemberlistConfig.Name, sc.MemberlistConfig.BindAddr, sc.MemberlistConfig.BindPort = "rogue", "127.0.0.1", 0
	sc.Logger = log.New(io.Discard, "", 0)
	sc.MemberlistConfig.Logger = sc.Logger
	rs, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Shutdown()
	if _, err := rs.Join([]string{m1.Self().Addr}, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the observer sees the rogue, unverified", func() bool {
		m, ok := obs.View().Member("rogue")
		return ok && m.Trust == cluster.TrustUnverified
	})
	deadline := time.Now().Add(time.Second)
	waitFor(t, 5*time.Second, "a second of gossip", func() bool { return time.Now().After(deadline) })
	if got := servers(c, "managers"); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("managers upstream = %v, want only m1", got)
	}
}
