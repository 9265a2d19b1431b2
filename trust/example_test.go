package trust_test

import (
	"context"
	"fmt"
	"net"

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
