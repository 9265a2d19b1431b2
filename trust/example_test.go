package trust_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/carbonkit/carbon/trust"
)

// A CA issues a manager and a worker certificate; the worker verifies the
// manager's identity through its identity endpoint and checks a claim.
func ExampleNewCA() {
	ca, _ := trust.NewCA("demo")
	issue := func(id trust.Identity) *trust.Source {
		is, _ := ca.Issue(id)
		src, _ := trust.SourceOf(ca, is)
		return src
	}
	m1 := issue(trust.Identity{Domain: "demo", SubDomain: "mgt", Role: trust.RoleManager, Name: "m1"})
	w1 := issue(trust.Identity{Domain: "demo", SubDomain: "worker", Role: trust.RoleWorker, Name: "w1"})

	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := trust.ServeIdentity(lis, m1)
	defer srv.Close()

	id, leaf, err := trust.Verify(context.Background(), lis.Addr().String(), w1)
	fmt.Println(id, err)
	// m1 signs its next claim ahead and reveals the secret when it claims.
	secret, seal, _ := trust.NewClaimSecret()
	sig, _ := trust.SignClaim(m1, "demo", "mgt", "m1", 7, seal)
	fmt.Println(trust.VerifyClaim(leaf.PublicKey, sig, "demo", "mgt", "m1", 7, seal), trust.Opens(seal, secret))
	// Output:
	// spiffe://demo/mgt/manager/m1 <nil>
	// <nil> true
}

// A node takes its certificate and CA bundle from a SPIRE agent's Workload
// API and follows its rotations; onErr hears of updates that were refused.
// (Not run here: it needs an agent listening on the socket.)
func ExampleFromWorkloadAPI() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := trust.FromWorkloadAPI(ctx, "unix:///run/spire/sockets/agent.sock", func(err error) {
		log.Print(err) // the Source keeps its last good certificate
	})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println(src.Identity()) // e.g. spiffe://shop/mgt/manager/m1; pass src as cluster.Config.Trust
}
