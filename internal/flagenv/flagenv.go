package flagenv

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/carbonkit/carbon/cluster"
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

// Gossip holds the flags that join a domain: -domain, -name, -bind,
// -advertise, -seeds, -key, -profile, -log, and the trust root's -ca,
// -cert and -cert-key, or -spiffe-socket.
type Gossip struct {
	Domain, Name, Bind, Advertise, Seeds, Key, Profile, LogLevel string
	CA, Cert, CertKey                                            string
	SpiffeSocket                                                 string
}

// GossipDefaults are the defaults that differ between programs.
type GossipDefaults struct {
	// Bind is the default of -bind.
	Bind string
	// LogLevel is the default of -log.
	LogLevel string
	// NameWithoutEnv makes -name a flag only: a tool run from the shell of
	// a server must not take the server's $CARBON_NAME, since two members
	// of one name collide.
	NameWithoutEnv bool
	// NameDefault describes the default of -name in its help ("a random
	// UUID" if empty); the program fills it in.
	NameDefault string
}

// DefineGossip defines the gossip flags on fs.
func DefineGossip(fs *flag.FlagSet, d GossipDefaults) *Gossip {
	g := &Gossip{}
	fs.StringVar(&g.Domain, "domain", Env("domain", ""), "cluster domain to join (required) ($CARBON_DOMAIN)")
	nameDef := d.NameDefault
	if nameDef == "" {
		nameDef = "a random UUID"
	}
	if d.NameWithoutEnv {
		fs.StringVar(&g.Name, "name", "", "unique node name (default: "+nameDef+")")
	} else {
		fs.StringVar(&g.Name, "name", Env("name", ""), "unique node name (default: "+nameDef+") ($CARBON_NAME)")
	}
	fs.StringVar(&g.Bind, "bind", Env("bind", d.Bind), "gossip host:port, UDP and TCP; port 0 picks a free one ($CARBON_BIND)")
	fs.StringVar(&g.Advertise, "advertise", Env("advertise", ""), "gossip host:port peers use to reach this node (default: from -bind) ($CARBON_ADVERTISE)")
	fs.StringVar(&g.Seeds, "seeds", Env("seeds", ""), "comma-separated well-known members, host:port or DNS names ($CARBON_SEEDS)")
	fs.StringVar(&g.Key, "key", Env("key", ""), "gossip encryption key, base64 of 16, 24 or 32 bytes ($CARBON_KEY)")
	fs.StringVar(&g.Profile, "profile", Env("profile", "lan"), "gossip timings: lan, local or wan ($CARBON_PROFILE)")
	fs.StringVar(&g.LogLevel, "log", Env("log", d.LogLevel), "log level: debug, info, warn or error ($CARBON_LOG)")
	fs.StringVar(&g.CA, "ca", Env("ca", ""), "PEM file of the CA certificates the domain trusts; with -cert and -key turns the trust root on ($CARBON_CA)")
	fs.StringVar(&g.Cert, "cert", Env("cert", ""), "PEM file of this node's certificate chain, URI SAN spiffe://<domain>/<sub-domain>/<role>/<name> ($CARBON_CERT)")
	fs.StringVar(&g.CertKey, "cert-key", Env("cert-key", ""), "PEM file of the certificate's private key ($CARBON_CERT_KEY)")
	fs.StringVar(&g.SpiffeSocket, "spiffe-socket", Env("spiffe-socket", ""), "SPIFFE Workload API address (a SPIRE agent's, unix:///run/spire/sockets/agent.sock) to take the trust root and certificate from, instead of -ca, -cert and -cert-key ($CARBON_SPIFFE_SOCKET)")
	return g
}

// Logger returns a text logger to w at the -log level.
func (g *Gossip) Logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return nil, fmt.Errorf("-log: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// Config returns the cluster.Config the flags describe: domain, name,
// addresses, seeds, profile, gossip key and trust root. The program sets
// the rest.
func (g *Gossip) Config() (cluster.Config, error) {
	if g.Domain == "" {
		return cluster.Config{}, errors.New("-domain is required (or $CARBON_DOMAIN)")
	}
	p, err := cluster.ParseProfile(g.Profile)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("-profile: %w", err)
	}
	cfg := cluster.Config{
		Domain: g.Domain, NodeName: g.Name, BindAddr: g.Bind, AdvertiseAddr: g.Advertise,
		Seeds: SplitList(g.Seeds), Profile: p,
	}
	if g.Key != "" {
		if cfg.Key, err = base64.StdEncoding.DecodeString(g.Key); err != nil {
			return cluster.Config{}, fmt.Errorf("-key: not base64: %w", err)
		}
	}
	switch set := b2i(g.CA != "") + b2i(g.Cert != "") + b2i(g.CertKey != ""); {
	case g.SpiffeSocket != "" && set > 0:
		return cluster.Config{}, errors.New("-spiffe-socket and -ca/-cert/-cert-key are two sources of the trust root: give one")
	case g.SpiffeSocket != "":
		// The first certificate must come within a minute; later updates
		// that fail the checks leave the last good one, which the node
		// logs once it expires.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if cfg.Trust, err = trust.FromWorkloadAPI(ctx, g.SpiffeSocket, nil); err != nil {
			return cluster.Config{}, fmt.Errorf("-spiffe-socket: %w", err)
		}
	case set == 3:
		if cfg.Trust, err = trust.LoadFiles(g.CA, g.Cert, g.CertKey); err != nil {
			return cluster.Config{}, fmt.Errorf("-ca/-cert/-cert-key: %w", err)
		}
	case set > 0:
		return cluster.Config{}, errors.New("-ca, -cert and -cert-key go together: give all three or none")
	}
	return cfg, nil
}
