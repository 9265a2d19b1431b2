package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/role"
)

// catalog is your service; here it implements nothing.
type catalog struct{ pb.UnimplementedCatalogServer }

func main() {
	seeds := flag.String("seeds", "", "comma-separated seeds")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var list []string
	if *seeds != "" {
		list = strings.Split(*seeds, ",")
	}
	if err := run(ctx, "demo", list, nil); err != nil {
		log.Fatal(err)
	}
}

// run is the snippet of the guide. ready, when set, receives the node and
// the HTTP address once serving (for the test).
func run(ctx context.Context, domain string, seeds []string, ready func(*cluster.Node, string)) error {
	grpcLis, _ := net.Listen("tcp", "127.0.0.1:0")
	httpLis, _ := net.Listen("tcp", "127.0.0.1:0")
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
	guard := role.NewGuard(node) // read-only unless this is the active manager
	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.UnaryServerInterceptor()),
		grpc.StreamInterceptor(guard.StreamServerInterceptor()))
	pb.RegisterCatalogServer(srv, &catalog{})
	mux := http.NewServeMux()
	mux.Handle("/status", cluster.NewStatusHandler(node))
	mux.Handle("/console", role.ManagerOnly(node, http.NotFoundHandler())) // your console: 404 on workers
	hs := &http.Server{Handler: guard.HTTP(mux)}                           // HTTP writes only on the active manager
	go srv.Serve(grpcLis)
	go hs.Serve(httpLis)
	if ready != nil {
		ready(node, httpLis.Addr().String())
	}
	<-ctx.Done() // SIGINT or SIGTERM
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node.Drain(dctx) // balancers stop sending work; an active manager hands over
	srv.GracefulStop()
	hs.Shutdown(dctx)
	return node.Leave(dctx)
}
