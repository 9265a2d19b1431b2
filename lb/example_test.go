package lb_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/lb"
)

// A gateway joins the domain as an observer and dials the workers.
func ExampleDial() {
	ctx := context.Background()
	n, err := cluster.Join(ctx, cluster.Config{Domain: "example.domain", Observer: true, BindAddr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	cc, err := lb.Dial(n, cluster.SubDomainWorker, lb.WithPolicy(lb.RoundRobin))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	fmt.Println(cc.Target())
	// Output: carbon:///worker
}

// Reads go to the workers, writes to the active manager.
func ExampleNewRouter() {
	ctx := context.Background()
	n, err := cluster.Join(ctx, cluster.Config{Domain: "example.router", Observer: true, BindAddr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	reads, err := lb.Dial(n, cluster.SubDomainWorker)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reads.Close()
	writes, err := lb.Dial(n, cluster.SubDomainManager, lb.WithPolicy(lb.ActiveFirst))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer writes.Close()
	conn := lb.NewRouter(reads, writes)
	_ = conn // pass to generated clients: pb.NewFooClient(conn)
	fmt.Println("routed")
	// Output: routed
}

// An HTTP client that spreads requests over the workers' "http" endpoints,
// keeping each tenant on one worker.
func ExampleNewTransport() {
	ctx := context.Background()
	n, err := cluster.Join(ctx, cluster.Config{Domain: "example.http", Observer: true, BindAddr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	rt := lb.NewTransport(n, cluster.SubDomainWorker, lb.WithPolicy(lb.ConsistentHash),
		lb.WithRequestKey(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	defer rt.(*lb.Transport).Close()
	client := &http.Client{Transport: rt}
	_, err = client.Get("http://worker/status")
	fmt.Println(err)
	// Output: Get "http://worker/status": lb: no routable member of sub-domain "worker" with endpoint "http"
}
