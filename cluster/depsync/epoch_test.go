package depsync_test

import (
	"context"
	"io"
	"log"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
)

// TestPublishesAcceptedAfterAHugeClaim: without a trust root, a peer with
// the gossip key claims epoch MaxUint64 and leaves. The real active's
// epoch never goes backwards, so its next publishes are not fenced: the
// workers take them.
func TestPublishesAcceptedAfterAHugeClaim(t *testing.T) {
	const domain = "depsync.epoch"
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
	waitActive(t, m)
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed()})
	waitConverged(t, 2, m, w)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"a.txt": "one"}, nil)
	rev1, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, rev1, w)
	epoch := m.n.Epoch()

	sc := serf.DefaultConfig()
	sc.NodeName = "rogue"
	sc.Tags = map[string]string{tags.KeyDomain: domain, tags.KeyRole: tags.RoleManager, tags.KeySubDomain: "mgt",
		tags.KeyState: tags.StateServing, tags.KeyClaim: tags.EncodeEpoch(math.MaxUint64)}
	sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	sc.MemberlistConfig.Name, sc.MemberlistConfig.BindAddr, sc.MemberlistConfig.BindPort = "rogue", "127.0.0.1", 0
	sc.Logger = log.New(io.Discard, "", 0)
	sc.MemberlistConfig.Logger = sc.Logger
	rs, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Join([]string{m.seed()}, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both nodes see the rogue", func() bool {
		_, a := m.n.View().Member("rogue")
		_, b := w.n.View().Member("rogue")
		return a && b
	})
	rs.Leave()
	rs.Shutdown()
	waitFor(t, 10*time.Second, "m1 writable after the rogue left", m.n.Writable)
	if e := m.n.Epoch(); e < epoch {
		t.Fatalf("epoch went backwards: %d after %d", e, epoch)
	}
	writeTree(t, src, map[string]string{"a.txt": "two"}, nil)
	rev2, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatalf("publish after the forged claim: %v", err)
	}
	if !rev1.Before(rev2) {
		t.Fatalf("revision %s is not after %s", rev2, rev1)
	}
	waitRevision(t, rev2, w)
	sameFiles(t, src, w)
}
