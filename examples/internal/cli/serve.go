package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"syscall"

	"os"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/server"
	"github.com/carbonkit/carbon/role"
)

// Serve is the main of examples/worker and examples/manager: it parses
// args, joins the domain, serves the catalog over gRPC and HTTP until
// SIGINT or SIGTERM, then shuts down gracefully (drain, finish in-flight
// calls, leave). It returns the exit status.
func Serve(program string, r role.Role, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defSub := cluster.SubDomainWorker
	if r == role.Manager {
		defSub = cluster.SubDomainManager
	}
	nf := NodeFlags(fs, program, defSub)
	grpcAddr := String(fs, "grpc", "127.0.0.1:0", "gRPC listen address")
	httpAddr := String(fs, "http", "127.0.0.1:0", "HTTP listen address (API, /status, and /console on managers)")
	advHost := String(fs, "advertise-host", "", "host advertised in the endpoints (needed when listening on 0.0.0.0)")
	disclose := Bool(fs, "disclose-active", false, "name the active manager's gRPC endpoint in rejected writes")
	historyPath := String(fs, "history", "", "file to append the history record to: one JSON line per write accepted or rejected, change applied, catch-up and change of writable (for fault checkers; see examples/internal/server/history.go)")
	var mode, quorum, followDomain, followSeeds, followBind *string
	var bootstrap *bool
	if r == role.Manager {
		bootstrap = Bool(fs, "bootstrap", false, "with -seeds none of which can be reached, elect this manager alone after the election delay; without it such a manager stays a read-only stand-by until it reaches a seed, so that a typo in -seeds does not make a second writer. Set it on the one manager that starts a new domain, or to recover when every other manager is gone (a manager without -seeds is alone by design and needs no -bootstrap)")
		mode = String(fs, "manager-mode", "active-passive", "active-passive or active-active")
		quorum = String(fs, "quorum", "0", "expected number of managers; a minority side becomes read-only (0: no quorum)")
	} else {
		followDomain = String(fs, "follow-domain", "", "managers' domain to follow as an observer for catalog changes (pattern 2)")
		followSeeds = String(fs, "follow-seeds", "", "comma-separated seeds of -follow-domain")
		followBind = String(fs, "follow-bind", "127.0.0.1:0", "gossip host:port of the observer node in -follow-domain")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rt, err := nf.Setup(stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer rt.Telemetry.Shutdown(context.Background())
	ccfg, err := nf.Config(rt)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ccfg.Role = r
	cfg := server.Config{Cluster: ccfg, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, AdvertiseHost: *advHost, DiscloseActive: *disclose, HistoryPath: *historyPath, Metrics: rt.Telemetry.Metrics}
	if r == role.Manager {
		switch *mode {
		case "active-passive":
			cfg.Cluster.ManagerMode = cluster.ActivePassive
		case "active-active":
			cfg.Cluster.ManagerMode = cluster.ActiveActive
		default:
			fmt.Fprintf(stderr, "-manager-mode: want active-passive or active-active, got %q\n", *mode)
			return 2
		}
		cfg.Cluster.Bootstrap = *bootstrap
		if cfg.Cluster.Quorum, err = strconv.Atoi(*quorum); err != nil || cfg.Cluster.Quorum < 0 {
			fmt.Fprintf(stderr, "-quorum: want a number of managers, got %q\n", *quorum)
			return 2
		}
	} else if *followDomain != "" {
		f := cluster.Config{Domain: *followDomain, Observer: true, BindAddr: *followBind, Seeds: SplitList(*followSeeds),
			Key: ccfg.Key, Profile: ccfg.Profile, NodeName: ccfg.NodeName,
			Logger: rt.Logger, MeterProvider: ccfg.MeterProvider, TracerProvider: ccfg.TracerProvider}
		cfg.Follow = &f
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s %s serving in %s/%s: grpc %s, http http://%s (status page http://%s/status, metrics http://%s/metrics)\n",
		r, s.Node().Name(), s.Node().Domain(), s.Node().SubDomain(), s.GRPCAddr(), s.HTTPAddr(), s.HTTPAddr(), s.HTTPAddr())
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "shutting down: drain, finish in-flight calls, leave")
	case <-s.Node().Done():
		// Left the domain (carbon leave from a manager): without its
		// node the server must not go on serving.
		fmt.Fprintln(stdout, "left the domain; shutting down: finish in-flight calls")
	}
	stop()
	sctx, cancel := ShutdownContext(rt.DrainTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		fmt.Fprintln(stderr, "shutdown:", err)
		return 1
	}
	return 0
}
