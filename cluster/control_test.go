package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
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
// member is verified; a drain request is honoured only when signed by a
// verified manager certificate (a manager, or an operator's observer with
// one), and a worker's request, a request without a signature, one whose
// signature is another member's and a replay are refused.
func TestControlWithTrustRoot(t *testing.T) {
	d := newTrusted(t, "ctl.trust")
	m1 := start(t, d.config("m1", role.Manager))
	w1 := start(t, d.config("w1", role.Worker, addrOf(m1)))
	w2 := start(t, d.config("w2", role.Worker, addrOf(m1)))
	w3 := start(t, d.config("w3", role.Worker, addrOf(m1)))
	observer := func(name string, r role.Role, tr string) Config {
		c := local(d.domain, r)
		c.Observer, c.Key, c.Seeds = true, trustKey, []string{addrOf(m1)}
		c.Trust = d.source(trust.Identity{Domain: d.domain, SubDomain: SubDomainManager, Role: tr, Name: name})
		return c
	}
	obs := start(t, observer("obs", "", trust.RoleObserver))
	op := start(t, observer("op", role.Manager, trust.RoleManager))
	all := []*Node{m1, w1, w2, w3, obs, op}
	waitFor(t, 15*time.Second, "all six verified by all", func() bool {
		for _, n := range all {
			ms := n.Members()
			if len(ms) != len(all) {
				return false
			}
			for _, m := range ms {
				if m.Trust != TrustVerified {
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
	if a, _ := w1.Active(SubDomainManager); a.Name != "m1" {
		t.Fatalf("active %q, want m1 (an observer with a manager certificate is never elected)", a.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for sender, want := range map[*Node]string{w2: "role worker, not manager", obs: "role observer, not manager"} {
		if err := sender.DrainMember(ctx, "w1"); !errors.Is(err, ErrNotManager) || !strings.Contains(err.Error(), want) {
			t.Errorf("DrainMember from %s: %v, want a refusal saying %q", sender.Name(), err, want)
		}
	}
	// Requests made by hand: unsigned, signed by m1 but sent by op (a
	// manager certificate too, so only the signature can refuse it), and
	// m1's own sent twice.
	query := func(from *Node, payload []byte) string {
		t.Helper()
		from.serfMu.Lock()
		resp, err := from.serf.Query(queryControl, payload, &serf.QueryParam{FilterNodes: []string{"w1"}, Timeout: 2 * time.Second})
		from.serfMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Close()
		for r := range resp.ResponseCh() {
			if r.From == "w1" && len(r.Payload) > 0 {
				return string(r.Payload)
			}
		}
		return "no answer"
	}
	signed, err := m1.controlPayload(controlDrain, "drain", "w1")
	if err != nil {
		t.Fatal(err)
	}
	unsigned := append([]byte{controlDrain, 2}, "w1"...)
	if got := query(m1, unsigned); !strings.Contains(got, "not signed") {
		t.Errorf("an unsigned request from the manager: %q, want a refusal saying it is not signed", got)
	}
	if got := query(op, signed); !strings.Contains(got, "bad signature") {
		t.Errorf("m1's signed request sent by op: %q, want a refusal for a bad signature", got)
	}
	if st := w1.Self().State; st != Serving {
		t.Fatalf("w1 is %v after refused requests, want serving", st)
	}
	if got := query(m1, signed); got[0] != controlAccepted {
		t.Fatalf("m1's signed request: %q, want it accepted", got)
	}
	if got := query(m1, signed); !strings.Contains(got, "replay") {
		t.Errorf("the same request again: %q, want a refusal as a replay", got)
	}
	waitFor(t, 10*time.Second, "m1 sees w1 draining", func() bool {
		m, _ := m1.View().Member("w1")
		return m.State == Draining
	})
	if err := op.DrainMember(ctx, "w3"); err != nil {
		t.Fatalf("DrainMember from an observer with a manager certificate: %v", err)
	}
	waitFor(t, 10*time.Second, "m1 sees w3 draining", func() bool {
		m, _ := m1.View().Member("w3")
		return m.State == Draining
	})
}
