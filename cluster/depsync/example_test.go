package depsync_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/role"
)

// A manager publishes a folder; a worker follows it and its deploy hook
// loads the new tree.
func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tmp, _ := os.MkdirTemp("", "depsync-example")
	defer os.RemoveAll(tmp)

	// start joins a node with a gRPC server serving its Syncer.
	start := func(name string, r role.Role, seeds []string, deploy depsync.DeployFunc) (*cluster.Node, *depsync.Syncer, func()) {
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		n, err := cluster.Join(ctx, cluster.Config{
			Domain: "example.depsync", Role: r, NodeName: name, BindAddr: "127.0.0.1:0", Seeds: seeds,
			Profile: cluster.ProfileLocal, Endpoints: map[string]string{"grpc": lis.Addr().String()}, Logger: quiet,
		})
		if err != nil {
			panic(err)
		}
		s, err := depsync.New(n, depsync.Options{Dir: filepath.Join(tmp, name), Deploy: deploy, Logger: quiet})
		if err != nil {
			panic(err)
		}
		srv := grpc.NewServer() // on a real server, with role's Guard interceptors
		s.Register(srv)
		go srv.Serve(lis)
		return n, s, func() { s.Close(); srv.Stop(); n.Close() }
	}

	mgr, pub, stopM := start("manager", role.Manager, nil, nil)
	defer stopM()
	deployed := make(chan string, 1)
	_, worker, stopW := start("worker", role.Worker, []string{mgr.Self().Addr},
		func(ctx context.Context, rev depsync.Revision, dir string) error {
			b, err := os.ReadFile(filepath.Join(dir, "app.conf"))
			deployed <- string(b)
			return err
		})
	defer stopW()
	for !mgr.Writable() {
		time.Sleep(10 * time.Millisecond)
	}

	src := filepath.Join(tmp, "artifacts")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "app.conf"), []byte("color=blue"), 0o644)
	rev, err := pub.Publish(ctx, src)
	if err != nil {
		panic(err)
	}
	fmt.Println("published seq", rev.Seq, "with", rev.Files, "file")
	fmt.Println("worker deployed", <-deployed)
	b, _ := os.ReadFile(filepath.Join(worker.Dir(), "app.conf"))
	fmt.Println("worker's folder has", string(b))
	// Output:
	// published seq 1 with 1 file
	// worker deployed color=blue
	// worker's folder has color=blue
}
