package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/telemetry"
	"github.com/carbonkit/carbon/internal/flagenv"
)

// EnvName returns the environment variable of a flag: "sub-domain" ->
// "CARBON_SUB_DOMAIN".
func EnvName(flagName string) string { return flagenv.EnvName(flagName) }

// Env returns the flag's environment variable, or def when it is unset.
func Env(flagName, def string) string { return flagenv.Env(flagName, def) }

// String defines a string flag whose default comes from its environment
// variable, and names the variable in the usage text.
func String(fs *flag.FlagSet, name, def, usage string) *string {
	return flagenv.String(fs, name, def, usage)
}

// Bool defines a boolean flag whose default comes from its environment
// variable ("1", "true", ...).
func Bool(fs *flag.FlagSet, name string, def bool, usage string) *bool {
	return flagenv.Bool(fs, name, def, usage)
}

// Node holds the flags that join a domain: the gossip flags every carbon
// program shares (internal/flagenv, the carbon CLI's too) and the servers'
// own.
type Node struct {
	*flagenv.Gossip
	SubDomain, Snapshot     string
	OTel, DrainTimeout      string
	fs                      *flag.FlagSet
	defaultSub, programName string
}

// NodeFlags defines the flags of a node (its domain, sub-domain, seeds,
// key, ...) on fs.
func NodeFlags(fs *flag.FlagSet, program, defaultSub string) *Node {
	n := &Node{fs: fs, defaultSub: defaultSub, programName: program}
	n.Gossip = flagenv.DefineGossip(fs, flagenv.GossipDefaults{Bind: "127.0.0.1:7946", LogLevel: "info"})
	fs.StringVar(&n.SubDomain, "sub-domain", Env("sub-domain", defaultSub), "sub-domain within the domain ($CARBON_SUB_DOMAIN)")
	fs.StringVar(&n.Snapshot, "snapshot", Env("snapshot", ""), "file recording known peers, to rejoin them after a restart ($CARBON_SNAPSHOT)")
	fs.StringVar(&n.OTel, "otel", Env("otel", "none"), "OpenTelemetry exporter for spans, and for metrics beside /metrics (always served): none or stdout ($CARBON_OTEL)")
	fs.StringVar(&n.DrainTimeout, "drain-timeout", Env("drain-timeout", "10s"), "how long a graceful shutdown may take ($CARBON_DRAIN_TIMEOUT)")
	return n
}

// Runtime is what the node flags set up: a logger and telemetry.
type Runtime struct {
	Logger       *slog.Logger
	Telemetry    telemetry.Providers
	DrainTimeout time.Duration
}

// Setup builds the logger and the telemetry providers.
func (n *Node) Setup(stderr io.Writer) (Runtime, error) {
	log, err := n.Logger(stderr)
	if err != nil {
		return Runtime{}, err
	}
	d, err := time.ParseDuration(n.DrainTimeout)
	if err != nil || d <= 0 {
		return Runtime{}, fmt.Errorf("-drain-timeout: want a positive duration such as 10s, got %q", n.DrainTimeout)
	}
	tel, err := telemetry.Setup(n.OTel, n.programName, stderr, 10*time.Second)
	if err != nil {
		return Runtime{}, fmt.Errorf("-otel: %w", err)
	}
	return Runtime{Logger: log, Telemetry: tel, DrainTimeout: d}, nil
}

// Config returns the cluster.Config the flags describe (without Role,
// Observer and Endpoints, which the program sets).
func (n *Node) Config(rt Runtime) (cluster.Config, error) {
	cfg, err := n.Gossip.Config()
	if err != nil {
		return cluster.Config{}, err
	}
	cfg.SubDomain, cfg.SnapshotPath = n.SubDomain, n.Snapshot
	cfg.Logger, cfg.MeterProvider, cfg.TracerProvider = rt.Logger, rt.Telemetry.Meter, rt.Telemetry.Tracer
	return cfg, nil
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string { return flagenv.SplitList(s) }

// ShutdownContext returns a context for a graceful shutdown of d.
func ShutdownContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
