package lb_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/carbonkit/carbon/lb"
)

// A gateway that forwards any gRPC service: reads to the workers, writes
// to the managers. In a real gateway reads and writes come from
// lb.Dial(n, "worker") and lb.Dial(n, "mgt", lb.WithPolicy(lb.ActiveFirst));
// here they are two plain servers, a worker whose health says SERVING and
// a manager whose health says NOT_SERVING, so the answers show where each
// call went.
func ExampleNewProxy() {
	worker, stopW := serveHealth(healthpb.HealthCheckResponse_SERVING)
	defer stopW()
	manager, stopM := serveHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	defer stopM()
	reads, writes := dialPlain(worker), dialPlain(manager)
	defer reads.Close()
	defer writes.Close()

	// shop.Cart has no descriptor in this program: a rule says its
	// methods are writes. Health is a built-in read.
	proxy := lb.NewProxy(reads, writes, lb.ProxyWriteMethods("/shop.Cart/*"))
	srv := grpc.NewServer(proxy.ServerOptions()...)
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(lis)
	defer srv.Stop()

	cc := dialPlain(lis.Addr().String())
	defer cc.Close()
	ctx := context.Background()
	h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("health (a read):", h.GetStatus(), err)

	// A write reaches the manager, which has no such service.
	err = cc.Invoke(ctx, "/shop.Cart/Add", &emptypb.Empty{}, &emptypb.Empty{})
	fmt.Println("shop.Cart/Add (a write):", status.Convert(err).Message())

	// Nothing says what shop.Orders/Cancel is: refused, never guessed.
	err = cc.Invoke(ctx, "/shop.Orders/Cancel", &emptypb.Empty{}, &emptypb.Empty{})
	fmt.Println("shop.Orders/Cancel:", status.Code(err))
	// Output:
	// health (a read): SERVING <nil>
	// shop.Cart/Add (a write): unknown service shop.Cart
	// shop.Orders/Cancel: Unimplemented
}

func serveHealth(s healthpb.HealthCheckResponse_ServingStatus) (addr string, stop func()) {
	hs := health.NewServer()
	hs.SetServingStatus("", s)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(lis)
	return lis.Addr().String(), srv.Stop
}

func dialPlain(addr string) *grpc.ClientConn {
	cc, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return cc
}
