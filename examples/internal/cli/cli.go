package cli

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/telemetry"
	"github.com/carbonkit/carbon/trust"
)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// EnvName returns the environment variable of a flag: "sub-domain" ->
// "CARBON_SUB_DOMAIN".
func EnvName(flagName string) string {
	return "CARBON_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Env returns the flag's environment variable, or def when it is unset.
func Env(flagName, def string) string {
	if v, ok := os.LookupEnv(EnvName(flagName)); ok {
		return v
	}
	return def
}

// String defines a string flag whose default comes from its environment
// variable, and names the variable in the usage text.
func String(fs *flag.FlagSet, name, def, usage string) *string {
	return fs.String(name, Env(name, def), usage+" ($"+EnvName(name)+")")
}

// Bool defines a boolean flag whose default comes from its environment
// variable ("1", "true", ...).
func Bool(fs *flag.FlagSet, name string, def bool, usage string) *bool {
	if v, err := strconv.ParseBool(Env(name, strconv.FormatBool(def))); err == nil {
		def = v
	}
	return fs.Bool(name, def, usage+" ($"+EnvName(name)+")")
}

// Node holds the flags that join a domain.
type Node struct {
	Domain, SubDomain, Name string
	Bind, Advertise, Seeds  string
	Key, Profile, Snapshot  string
	LogLevel, OTel          string
	DrainTimeout            string
	CA, Cert, CertKey       string
	fs                      *flag.FlagSet
	defaultSub, programName string
}

// NodeFlags defines the flags of a node (its domain, sub-domain, seeds,
// key, ...) on fs.
func NodeFlags(fs *flag.FlagSet, program, defaultSub string) *Node {
	n := &Node{fs: fs, defaultSub: defaultSub, programName: program}
	fs.StringVar(&n.Domain, "domain", Env("domain", ""), "cluster domain to join (required) ($CARBON_DOMAIN)")
	fs.StringVar(&n.SubDomain, "sub-domain", Env("sub-domain", defaultSub), "sub-domain within the domain ($CARBON_SUB_DOMAIN)")
	fs.StringVar(&n.Name, "name", Env("name", ""), "unique node name (default: a random UUID) ($CARBON_NAME)")
	fs.StringVar(&n.Bind, "bind", Env("bind", "127.0.0.1:7946"), "gossip host:port, UDP and TCP; port 0 picks a free one ($CARBON_BIND)")
	fs.StringVar(&n.Advertise, "advertise", Env("advertise", ""), "gossip host:port peers use to reach this node (default: from -bind) ($CARBON_ADVERTISE)")
	fs.StringVar(&n.Seeds, "seeds", Env("seeds", ""), "comma-separated well-known members, host:port or DNS names ($CARBON_SEEDS)")
	fs.StringVar(&n.Key, "key", Env("key", ""), "gossip encryption key, base64 of 16, 24 or 32 bytes ($CARBON_KEY)")
	fs.StringVar(&n.Profile, "profile", Env("profile", "lan"), "gossip timings: lan, local or wan ($CARBON_PROFILE)")
	fs.StringVar(&n.Snapshot, "snapshot", Env("snapshot", ""), "file recording known peers, to rejoin them after a restart ($CARBON_SNAPSHOT)")
	fs.StringVar(&n.LogLevel, "log", Env("log", "info"), "log level: debug, info, warn or error ($CARBON_LOG)")
	fs.StringVar(&n.OTel, "otel", Env("otel", "none"), "OpenTelemetry exporter for spans, and for metrics beside /metrics (always served): none or stdout ($CARBON_OTEL)")
	fs.StringVar(&n.CA, "ca", Env("ca", ""), "PEM file of the CA certificates the domain trusts; with -cert and -key turns the trust root on ($CARBON_CA)")
	fs.StringVar(&n.Cert, "cert", Env("cert", ""), "PEM file of this node's certificate chain, URI SAN spiffe://<domain>/<sub-domain>/<role>/<name> ($CARBON_CERT)")
	fs.StringVar(&n.CertKey, "cert-key", Env("cert-key", ""), "PEM file of the certificate's private key ($CARBON_CERT_KEY)")
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
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(n.LogLevel)); err != nil {
		return Runtime{}, fmt.Errorf("-log: %w", err)
	}
	d, err := time.ParseDuration(n.DrainTimeout)
	if err != nil || d <= 0 {
		return Runtime{}, fmt.Errorf("-drain-timeout: want a positive duration such as 10s, got %q", n.DrainTimeout)
	}
	tel, err := telemetry.Setup(n.OTel, n.programName, stderr, 10*time.Second)
	if err != nil {
		return Runtime{}, fmt.Errorf("-otel: %w", err)
	}
	return Runtime{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})), Telemetry: tel, DrainTimeout: d}, nil
}

// Config returns the cluster.Config the flags describe (without Role,
// Observer and Endpoints, which the program sets).
func (n *Node) Config(rt Runtime) (cluster.Config, error) {
	if n.Domain == "" {
		return cluster.Config{}, fmt.Errorf("-domain is required (or $CARBON_DOMAIN)")
	}
	p, err := cluster.ParseProfile(n.Profile)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("-profile: %w", err)
	}
	cfg := cluster.Config{
		Domain: n.Domain, SubDomain: n.SubDomain, NodeName: n.Name,
		BindAddr: n.Bind, AdvertiseAddr: n.Advertise, Seeds: SplitList(n.Seeds),
		Profile: p, SnapshotPath: n.Snapshot,
		Logger: rt.Logger, MeterProvider: rt.Telemetry.Meter, TracerProvider: rt.Telemetry.Tracer,
	}
	if n.Key != "" {
		if cfg.Key, err = base64.StdEncoding.DecodeString(n.Key); err != nil {
			return cluster.Config{}, fmt.Errorf("-key: not base64: %w", err)
		}
	}
	switch set := b2i(n.CA != "") + b2i(n.Cert != "") + b2i(n.CertKey != ""); {
	case set == 3:
		if cfg.Trust, err = trust.LoadFiles(n.CA, n.Cert, n.CertKey); err != nil {
			return cluster.Config{}, fmt.Errorf("-ca/-cert/-cert-key: %w", err)
		}
	case set > 0:
		return cluster.Config{}, fmt.Errorf("-ca, -cert and -cert-key go together: give all three or none")
	}
	return cfg, nil
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ShutdownContext returns a context for a graceful shutdown of d.
func ShutdownContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
