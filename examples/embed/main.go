package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

func main() {
	seeds := flag.String("seeds", "", "comma-separated seeds (host:port); empty starts a new domain")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var list []string
	if *seeds != "" {
		list = strings.Split(*seeds, ",")
	}
	if err := run(ctx, "demo", list, os.Stdout, nil); err != nil {
		log.Fatal(err)
	}
}

// run is the README's embedding example, between the README markers. ready,
// when set, receives the node and the HTTP address once serving (for the test).
func run(ctx context.Context, domain string, seeds []string, out io.Writer, ready func(*cluster.Node, string)) error {
	// README:begin
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	node, err := cluster.Join(ctx, cluster.Config{
		Domain:    domain,
		Role:      role.Worker, // or role.Manager
		BindAddr:  "127.0.0.1:0",
		Seeds:     seeds,
		Endpoints: map[string]string{"grpc": grpcLis.Addr().String(), "http": httpLis.Addr().String()},
	})
	if err != nil {
		return err
	}
	for _, m := range node.Members() { // an immutable snapshot; node.Watch(ctx) streams changes
		fmt.Fprintf(out, "%s %s/%s %s\n", m.Name, m.SubDomain, m.Role, m.Status)
	}

	guard := role.NewGuard(node) // writes only on the active manager
	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.UnaryServerInterceptor()),
		grpc.StreamInterceptor(guard.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(srv, health.NewServer()) // register your services here
	mux := http.NewServeMux()
	mux.Handle("/status", cluster.NewStatusHandler(node))
	mux.Handle("/console", role.ManagerOnly(node, http.NotFoundHandler())) // your console; 404 on workers
	hs := &http.Server{Handler: guard.HTTP(mux)}
	go srv.Serve(grpcLis)
	go hs.Serve(httpLis)
	// README:end
	if ready != nil {
		ready(node, httpLis.Addr().String())
	}
	<-ctx.Done() // SIGINT or SIGTERM
	// README:begin
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node.Drain(dctx) // balancers stop sending work; an active manager hands over
	srv.GracefulStop()
	hs.Shutdown(dctx)
	return node.Leave(dctx)
	// README:end
}
