package carboncli_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cmd/carbon/internal/carboncli"
	"github.com/carbonkit/carbon/role"
)

// Example runs carbon active against a one-manager domain on 127.0.0.1.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mgr, err := cluster.Join(ctx, cluster.Config{Domain: "example", Role: role.Manager, NodeName: "manager-1",
		BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mgr.Close()
	for _, ok := mgr.Active(cluster.SubDomainManager); !ok; _, ok = mgr.Active(cluster.SubDomainManager) {
		time.Sleep(10 * time.Millisecond)
	}
	code := carboncli.Main(ctx, []string{"-domain", "example", "-seeds", mgr.Self().Addr, "-profile", "local", "active"}, os.Stdout, os.Stderr)
	fmt.Println("exit", code)
	// Output:
	// SUB-DOMAIN  ACTIVE     EPOCH   GRPC
	// mgt         manager-1  108582  -
	// exit 0
}
