package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

// A manager and a worker join one domain on loopback; the worker sees
// the manager become active.
func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := cluster.Join(ctx, cluster.Config{
		Domain: "example.domain", Role: role.Manager, NodeName: "manager-1",
		BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal, Logger: quiet,
		Endpoints: map[string]string{"grpc": "127.0.0.1:9443"},
	})
	if err != nil {
		panic(err)
	}
	defer mgr.Leave(ctx)
	wrk, err := cluster.Join(ctx, cluster.Config{
		Domain: "example.domain", Role: role.Worker, NodeName: "worker-1",
		BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal, Logger: quiet,
		Seeds: []string{mgr.Self().Addr},
	})
	if err != nil {
		panic(err)
	}
	defer wrk.Leave(ctx)

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for v := range wrk.Watch(wctx) {
		if a, ok := v.Active("mgt"); ok && v.Len() == 2 {
			grpcAddr, _ := a.Endpoint("grpc")
			fmt.Println("active manager:", a.Name, grpcAddr)
			fmt.Println("worker writable:", wrk.Writable(), "sub-domain:", wrk.SubDomain())
			break
		}
	}
	// Output:
	// active manager: manager-1 127.0.0.1:9443
	// worker writable: false sub-domain: worker
}

// Join validates the whole Config first; each error names the field.
func ExampleJoin_badConfig() {
	_, err := cluster.Join(context.Background(), cluster.Config{Domain: "d", Role: "boss"})
	fmt.Println(err)
	// Output:
	// cluster: invalid config: Role: unknown role "boss" (want "worker" or "manager")
}
