package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/role"
)

// TestControlHonoursManagersOnly drains and removes members from other
// nodes over real serf: a worker and a plain observer are refused by the
// target, a manager and an observer acting for the managers are obeyed.
func TestControlHonoursManagersOnly(t *testing.T) {
	named := func(c Config, name string, seed *Node) Config {
		c.NodeName = name
		if seed != nil {
			c.Seeds = []string{addrOf(seed)}
		}
		return c
	}
	mgr := start(t, named(local("ctl", role.Manager), "mgr", nil))
	w1 := start(t, named(local("ctl", role.Worker), "w1", mgr))
	w2 := start(t, named(local("ctl", role.Worker), "w2", mgr))
	obs := start(t, named(Config{Domain: "ctl", Observer: true, BindAddr: "127.0.0.1:0", Profile: ProfileLocal, Logger: testLogger()}, "obs", mgr))
	op := start(t, named(Config{Domain: "ctl", Observer: true, Role: role.Manager, BindAddr: "127.0.0.1:0", Profile: ProfileLocal, Logger: testLogger()}, "op", mgr))
	all := []*Node{mgr, w1, w2, obs, op}
	waitFor(t, 10*time.Second, "all five see each other", func() bool {
		for _, n := range all {
			if len(n.View().Alive("")) != 3 || n.View().Len() != 5 {
				return false
			}
		}
		return true
	})
	if self := op.Self(); !self.Observer || self.Role != role.Manager || self.SubDomain != "" || self.Routable() {
		t.Fatalf("an observer with Role manager: %+v, want an observer of no sub-domain, never routable", self)
	}
	if m, _ := mgr.View().Member("op"); !m.Observer || m.Role != role.Manager {
		t.Fatalf("the manager sees op as %+v, want an observer acting for the managers", m)
	}
	if a, _ := mgr.Active(SubDomainManager); a.Name != "mgr" {
		t.Fatalf("active manager %q, want mgr (an observer is never elected)", a.Name)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, sender := range []*Node{w2, obs} {
		err := sender.DrainMember(ctx, "w1")
		if !errors.Is(err, ErrNotManager) || !strings.Contains(err.Error(), sender.Name()) {
			t.Errorf("DrainMember from %s: %v, want ErrNotManager naming the sender", sender.Name(), err)
		}
		if err := sender.LeaveMember(ctx, "w1"); !errors.Is(err, ErrNotManager) {
			t.Errorf("LeaveMember from %s: %v, want ErrNotManager", sender.Name(), err)
		}
	}
	if st := w1.Self().State; st != Serving {
		t.Fatalf("w1 is %v after refused requests, want serving", st)
	}
	if err := op.DrainMember(ctx, "nobody"); !errors.Is(err, ErrNoMember) {
		t.Errorf("DrainMember(nobody): %v, want ErrNoMember", err)
	}

	if err := op.DrainMember(ctx, "w1"); err != nil {
		t.Fatalf("DrainMember from an observer acting for the managers: %v", err)
	}
	waitFor(t, 10*time.Second, "every node sees w1 draining", func() bool {
		for _, n := range all {
			if m, _ := n.View().Member("w1"); m.State != Draining {
				return false
			}
		}
		return true
	})
	if err := mgr.LeaveMember(ctx, "w2"); err != nil {
		t.Fatalf("LeaveMember from the manager: %v", err)
	}
	select {
	case <-w2.Done():
	case <-ctx.Done():
		t.Fatal("w2 did not leave at the manager's request")
	}
	waitFor(t, 10*time.Second, "the manager sees w2 left", func() bool {
		m, _ := mgr.View().Member("w2")
		return m.Status == StatusLeft
	})
}

func TestObserverRoleValidation(t *testing.T) {
	_, err := Join(context.Background(), Config{Domain: "x", Observer: true, Role: role.Worker})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Role") {
		t.Fatalf("observer with role worker: %v, want ErrInvalidConfig naming Role", err)
	}
}

// TestControlWithTrustRoot: with a trust root, the status page says each
// member is verified, and a drain request is refused even from a verified
// manager, since the request itself is not signed yet.
func TestControlWithTrustRoot(t *testing.T) {
	d := newTrusted(t, "ctl.trust")
	m1 := start(t, d.config("m1", role.Manager))
	w1 := start(t, d.config("w1", role.Worker, addrOf(m1)))
	waitFor(t, 10*time.Second, "both verified", func() bool {
		for _, n := range []*Node{m1, w1} {
			for _, m := range n.Members() {
				if m.Trust != TrustVerified || len(n.Members()) != 2 {
					return false
				}
			}
		}
		return true
	})
	for _, s := range NewStatusReport(m1).Domains[0].SubDomains {
		for _, m := range s.Members {
			if m.Trust != "verified" {
				t.Errorf("status: %s trust %q, want verified", m.Name, m.Trust)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m1.DrainMember(ctx, "w1"); !errors.Is(err, ErrNotManager) || !strings.Contains(err.Error(), "trust root") {
		t.Errorf("DrainMember with a trust root: %v, want a refusal naming the trust root", err)
	}
	if st := w1.Self().State; st != Serving {
		t.Errorf("w1 is %v after a refused drain", st)
	}
}
