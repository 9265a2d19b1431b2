package lb

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// rogueServer is an attacker's gRPC server that counts what reaches it.
type rogueServer struct {
	testpb.UnimplementedGuardServer
	calls int
}

func (r *rogueServer) Put(ctx context.Context, in *testpb.Item) (*testpb.Item, error) {
	r.calls++
	return &testpb.Item{Value: "rogue"}, nil
}

// TestWritesNeverReachAnUnverifiedManager: with a trust root, a process
// holding a worker's certificate that tags itself manager with a higher
// claim and a gRPC endpoint gets no write through lb.Dial(ActiveFirst) and
// lb.NewRouter: they all go to the verified active manager.
func TestWritesNeverReachAnUnverifiedManager(t *testing.T) {
	domain := "lbtrust.test"
	ca := trusttest.CA(t, domain)
	src := func(sub, r, name string) *trust.Source { return trusttest.Member(t, ca, sub, r, name) }
	m1 := startBackend(t, domain, memberSpec{name: "m1", role: role.Manager, trust: src("mgt", trust.RoleManager, "m1")})
	w1 := startBackend(t, domain, memberSpec{name: "w1", role: role.Worker, seeds: []string{m1.node.Self().Addr}, trust: src("worker", trust.RoleWorker, "w1")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := cluster.Join(ctx, cluster.Config{
		Domain: domain, Observer: true, BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal,
		Seeds: []string{m1.node.Self().Addr}, Logger: testLogger(), Trust: src("gateway", trust.RoleObserver, "obs"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	testutil.WaitFor(t, 10*time.Second, "m1 active and verified on the observer", func() bool {
		a, ok := obs.Active("mgt")
		return ok && a.Name == "m1" && a.Trust == cluster.TrustVerified && m1.node.Writable()
	})
	epoch := m1.node.Epoch()

	// The rogue: a gRPC server, a stolen worker certificate proving
	// itself, and a forged manager claim far above m1's.
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	rs := &rogueServer{}
	gs := grpc.NewServer()
	testpb.RegisterGuardServer(gs, rs)
	go gs.Serve(gl)
	defer gs.Stop()
	ws := src("mgt", trust.RoleWorker, "rogue")
	il, _ := net.Listen("tcp", "127.0.0.1:0")
	is := trust.ServeIdentity(il, ws)
	defer is.Close()
	claim := epoch + 5<<16
	secret, seal, _ := trust.NewClaimSecret()
	sig, _ := trust.SignClaim(ws, domain, "mgt", "rogue", claim, seal)
	tg := map[string]string{
		tags.KeyDomain: domain, tags.KeyRole: tags.RoleManager, tags.KeySubDomain: "mgt",
		tags.KeyState: tags.StateServing, tags.KeyClaim: tags.EncodeEpoch(claim),
		tags.KeyIdentity:  strconv.Itoa(il.Addr().(*net.TCPAddr).Port),
		tags.KeyClaimSig:  tags.EncodeSignedClaim(claim, seal, sig),
		tags.KeyClaimKey:  base64.RawStdEncoding.EncodeToString(secret),
		tags.KeyEndpoints: tags.EncodeMap(map[string]string{"grpc": gl.Addr().String()}, ""),
	}
	rogue := rawSerf(t, "rogue", tg, m1.node.Self().Addr)
	defer rogue.Shutdown()
	testutil.WaitFor(t, 10*time.Second, "the rogue in the observer's view, unverified", func() bool {
		m, ok := obs.View().Member("rogue")
		return ok && m.Trust == cluster.TrustUnverified && !m.Routable()
	})

	reads, err := Dial(obs, "worker", WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer reads.Close()
	writes, err := Dial(obs, "mgt", WithPolicy(ActiveFirst), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer writes.Close()
	direct := testpb.NewGuardClient(writes)
	routed := testpb.NewGuardClient(NewRouter(reads, writes))
	for i := range 20 {
		cl := direct
		if i%2 == 1 {
			cl = routed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cl.Put(ctx, &testpb.Item{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if res.GetValue() != "m1" {
			t.Fatalf("Put %d served by %q, want m1", i, res.GetValue())
		}
	}
	if rs.calls != 0 {
		t.Fatalf("the rogue served %d writes", rs.calls)
	}
	if a, _ := obs.Active("mgt"); a.Name != "m1" || m1.node.Epoch() != epoch {
		t.Fatalf("active %s at %d, want m1 at %d", a.Name, m1.node.Epoch(), epoch)
	}
	_ = w1
}

// rawSerf is a bare serf node on 127.0.0.1 with hand-written tags, joined
// to seed: what holding a domain's gossip key lets an attacker run.
func rawSerf(t *testing.T, name string, tg map[string]string, seed string) *serf.Serf {
	t.Helper()
	sc := serf.DefaultConfig()
	sc.NodeName, sc.Tags = name, tg
	sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	sc.MemberlistConfig.Name = name
	sc.MemberlistConfig.BindAddr, sc.MemberlistConfig.BindPort = "127.0.0.1", 0
	sc.Logger = log.New(io.Discard, "", 0)
	sc.MemberlistConfig.Logger = sc.Logger
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join([]string{seed}, true); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMemberCredentialsCheckTheName: a server proving a valid certificate
// of another member is refused: a tag pointing a member's endpoint at
// someone else's server gets no connection.
func TestMemberCredentialsCheckTheName(t *testing.T) {
	ca := trusttest.CA(t, "creds.test")
	m1, m2 := trusttest.Member(t, ca, "mgt", trust.RoleManager, "m1"), trusttest.Member(t, ca, "mgt", trust.RoleManager, "m2")
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(trust.ServerTLSConfig(m1, trust.AuthorizeDomain("creds.test")))))
	go gs.Serve(lis)
	defer gs.Stop()
	c := newMemberCredentials(m2, "creds.test", "mgt")
	for name, wantOK := range map[string]bool{"m1": true, "m2": false} {
		raw, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, _, err := c.ClientHandshake(context.Background(), name, raw)
		if (err == nil) != wantOK {
			t.Errorf("handshake as %q with the server of m1: %v, want ok=%v", name, err, wantOK)
		}
		if err == nil {
			conn.Close()
		} else {
			raw.Close()
		}
	}
}
