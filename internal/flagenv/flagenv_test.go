package flagenv

import (
	"flag"
	"strings"
	"testing"

	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/trust"
)

// TestSpiffeSocket: -spiffe-socket takes the node's trust root and
// certificate from a Workload API, and refuses to be combined with the
// file flags.
func TestSpiffeSocket(t *testing.T) {
	ca := trusttest.CA(t, "shop")
	w := trusttest.StartWorkloadAPI(t)
	id := trust.Identity{Domain: "shop", SubDomain: "worker", Role: trust.RoleWorker, Name: "w1"}
	w.Push(t, ca, id)
	parse := func(args ...string) (*Gossip, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		g := DefineGossip(fs, GossipDefaults{})
		return g, fs.Parse(append([]string{"-domain", "shop"}, args...))
	}
	g, err := parse("-spiffe-socket", w.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := g.Config()
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Trust.Close()
	if cfg.Trust == nil || cfg.Trust.Identity() != id {
		t.Fatalf("trust root from the Workload API: %+v", cfg.Trust)
	}

	g, _ = parse("-spiffe-socket", w.Addr, "-ca", "ca.pem")
	if _, err := g.Config(); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("-spiffe-socket with -ca: %v, want a refusal", err)
	}
}
