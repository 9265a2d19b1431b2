package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/cli"
	"github.com/carbonkit/carbon/examples/internal/gateway"
	"github.com/carbonkit/carbon/examples/internal/nginxlb"
	"github.com/carbonkit/carbon/examples/internal/telemetry"
	"github.com/carbonkit/carbon/lb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parsePolicy(s string) (lb.Policy, bool) {
	for _, p := range []lb.Policy{lb.LeastLoaded, lb.RoundRobin, lb.ConsistentHash, lb.ActiveFirst, lb.Nearest} {
		if p.String() == s {
			return p, true
		}
	}
	return 0, false
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := cli.NodeFlags(fs, "gateway", cluster.SubDomainWorker)
	mode := cli.String(fs, "mode", "sub-domain", "sub-domain (front -sub-domain) or shared (reads to -sub-domain, writes to -writes-sub-domain)")
	policy := cli.String(fs, "policy", "", "lb policy for -sub-domain: least_loaded, round_robin, hash, active_first or nearest (default: active_first for mgt, least_loaded otherwise)")
	wDomain := cli.String(fs, "writes-domain", "", "shared mode: the managers' domain, if not -domain")
	wSeeds := cli.String(fs, "writes-seeds", "", "shared mode: seeds of -writes-domain")
	wSub := cli.String(fs, "writes-sub-domain", cluster.SubDomainManager, "shared mode: the managers' sub-domain")
	wBind := cli.String(fs, "writes-bind", "127.0.0.1:0", "shared mode: gossip host:port of the observer in -writes-domain")
	grpcAddr := cli.String(fs, "grpc", "127.0.0.1:0", "gRPC listen address")
	httpAddr := cli.String(fs, "http", "127.0.0.1:0", "HTTP listen address")
	useNginx := cli.Bool(fs, "nginx", false, "run a real Nginx as the balancer, its upstreams kept by lb/nginx")
	metricsAddr := cli.String(fs, "metrics", "", "with -nginx: listen address of the gateway's own /metrics (without -nginx it is on -http)")
	nginxBin := cli.String(fs, "nginx-bin", "", "nginx binary (default: nginx in PATH, or /usr/sbin/nginx)")
	upTimeout := cli.String(fs, "upstream-timeout", "10s", "how long a call waits for the upstream's first answer before the client gets 503 / Unavailable (0 disables)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, err error) int { fmt.Fprintln(stderr, err); return code }
	timeout, err := time.ParseDuration(*upTimeout)
	if err != nil || timeout < 0 {
		return fail(2, fmt.Errorf("-upstream-timeout: want a duration such as 10s or 0 (none), got %q", *upTimeout))
	}
	if timeout == 0 {
		timeout = -1 // gateway.Config: negative disables, zero is the default
	}
	rt, err := nf.Setup(stderr)
	if err != nil {
		return fail(2, err)
	}
	defer rt.Telemetry.Shutdown(context.Background())
	ccfg, err := nf.Config(rt)
	if err != nil {
		return fail(2, err)
	}
	target := ccfg.SubDomain
	ccfg.Observer, ccfg.SubDomain = true, ""

	reads := gateway.Route{SubDomain: target, Policy: lb.LeastLoaded}
	if target == cluster.SubDomainManager {
		reads.Policy = lb.ActiveFirst
	}
	if *policy != "" {
		p, ok := parsePolicy(*policy)
		if !ok {
			return fail(2, fmt.Errorf("-policy: unknown policy %q", *policy))
		}
		reads.Policy = p
	}
	if *mode != "sub-domain" && *mode != "shared" {
		return fail(2, fmt.Errorf("-mode: want sub-domain or shared, got %q", *mode))
	}
	nginxOn := *useNginx

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if reads.Node, err = cluster.Join(ctx, ccfg); err != nil {
		return fail(1, err)
	}
	nodes := []*cluster.Node{reads.Node}
	defer func() {
		lctx, cancel := cli.ShutdownContext(rt.DrainTimeout)
		defer cancel()
		for _, n := range nodes {
			n.Leave(lctx)
		}
	}()
	var writes *gateway.Route
	if *mode == "shared" {
		writes = &gateway.Route{Node: reads.Node, SubDomain: *wSub, Policy: lb.ActiveFirst}
		if *wDomain != "" && *wDomain != ccfg.Domain {
			wcfg := ccfg
			wcfg.Domain, wcfg.BindAddr, wcfg.AdvertiseAddr, wcfg.Seeds, wcfg.SnapshotPath = *wDomain, *wBind, "", cli.SplitList(*wSeeds), ""
			if writes.Node, err = cluster.Join(ctx, wcfg); err != nil {
				return fail(1, fmt.Errorf("joining -writes-domain %q: %w", *wDomain, err))
			}
			nodes = append(nodes, writes.Node)
		}
	}

	type balancer interface {
		GRPCAddr() string
		HTTPAddr() string
	}
	var b balancer
	var closeB func(context.Context)
	if nginxOn {
		bin := *nginxBin
		if bin == "" {
			if bin, err = exec.LookPath("nginx"); err != nil {
				bin = "/usr/sbin/nginx"
			}
		}
		nb, err := nginxlb.Start(ctx, nginxlb.Config{Bin: bin, Reads: reads, Writes: writes, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, MeterProvider: rt.Telemetry.Meter, Logger: rt.Logger})
		if err != nil {
			return fail(1, err)
		}
		b, closeB = nb, func(context.Context) { nb.Close() }
		if *metricsAddr != "" {
			// Nginx owns -http: the controllers' metrics get a listener of their own.
			ml, err := net.Listen("tcp", *metricsAddr)
			if err != nil {
				nb.Close()
				return fail(1, fmt.Errorf("-metrics: %w", err))
			}
			mux := http.NewServeMux()
			mux.Handle("GET "+telemetry.MetricsPath, rt.Telemetry.Metrics)
			ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			go ms.Serve(ml)
			closeB = func(context.Context) { ms.Close(); nb.Close() }
			fmt.Fprintf(stdout, "metrics http://%s%s, ", ml.Addr(), telemetry.MetricsPath)
		}
		fmt.Fprintf(stdout, "nginx (prefix %s) ", nb.Dir())
	} else {
		var opts []lb.Option
		if rt.Telemetry.Meter != nil {
			opts = append(opts, lb.WithMeterProvider(rt.Telemetry.Meter))
		}
		g, err := gateway.Start(gateway.Config{Reads: reads, Writes: writes, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, Options: opts, Metrics: rt.Telemetry.Metrics, Logger: rt.Logger, UpstreamTimeout: timeout})
		if err != nil {
			return fail(1, err)
		}
		b, closeB = g, func(ctx context.Context) { g.Shutdown(ctx) }
	}
	what := "sub-domain " + target
	if writes != nil {
		what = fmt.Sprintf("reads to %s/%s, writes to %s/%s", reads.Node.Domain(), target, writes.Node.Domain(), writes.SubDomain)
	}
	fmt.Fprintf(stdout, "gateway in front of %s: grpc %s, http http://%s\n", what, b.GRPCAddr(), b.HTTPAddr())
	<-ctx.Done()
	stop()
	fmt.Fprintln(stdout, "shutting down")
	sctx, cancel := cli.ShutdownContext(rt.DrainTimeout)
	defer cancel()
	closeB(sctx)
	return 0
}
