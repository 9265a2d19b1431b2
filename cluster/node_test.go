package cluster

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
)

// Two managers and three workers converge: every node sees five alive
// members with the right roles and sub-domains, and exactly one manager
// is active and writable.
func TestConvergeRolesAndSubDomains(t *testing.T) {
	var nodes []*Node
	for i, r := range []role.Role{role.Manager, role.Manager, role.Worker, role.Worker, role.Worker} {
		cfg := local("carbon.test", r)
		cfg.NodeName = fmt.Sprintf("n%d", i)
		cfg.Endpoints = map[string]string{"grpc": fmt.Sprintf("127.0.0.1:%d", 9000+i)}
		if i > 0 {
			cfg.Seeds = []string{addrOf(nodes[0])}
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "5 alive members everywhere", converged(nodes, 5))
	for _, n := range nodes {
		for _, m := range n.Members() {
			wantRole, wantSub := role.Worker, SubDomainWorker
			if m.Name == "n0" || m.Name == "n1" {
				wantRole, wantSub = role.Manager, SubDomainManager
			}
			if m.Role != wantRole || m.SubDomain != wantSub || m.Domain != "carbon.test" || m.Observer {
				t.Errorf("%s sees %s as %s/%s in %s (observer %v), want %s/%s", n.Name(), m.Name, m.Role, m.SubDomain, m.Domain, m.Observer, wantRole, wantSub)
			}
			if m.State != Serving {
				t.Errorf("%s sees %s %s, want serving", n.Name(), m.Name, m.State)
			}
			if got, _ := m.Endpoint("grpc"); got == "" {
				t.Errorf("%s sees %s without its grpc endpoint", n.Name(), m.Name)
			}
		}
	}
	waitFor(t, 5*time.Second, "one active manager seen by all", func() bool {
		a0, ok := nodes[0].Active(SubDomainManager)
		if !ok {
			return false
		}
		for _, n := range nodes {
			if a, ok := n.Active(SubDomainManager); !ok || a.Name != a0.Name {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "exactly one writable node, a manager", func() bool {
		writable := 0
		for _, n := range nodes {
			if n.Writable() {
				writable++
				if n.Role() != role.Manager {
					t.Fatalf("%s (%s) is writable", n.Name(), n.Role())
				}
			}
		}
		return writable == 1
	})
}

func TestLeaveAndCloseAreIdempotent(t *testing.T) {
	a := start(t, local("carbon.test", role.Worker))
	ctx := context.Background()
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after Leave: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed after Leave")
	}
	b := start(t, local("carbon.test", role.Worker))
	b.Close()
	b.Close()
	if err := b.Leave(ctx); err != ErrClosed {
		t.Fatalf("Leave after Close = %v, want ErrClosed", err)
	}
}

// RTT comes from serf's coordinates once the nodes have probed each other.
func TestRTT(t *testing.T) {
	a := start(t, local("carbon.test", role.Worker))
	b := start(t, withSeed(local("carbon.test", role.Worker), a))
	waitFor(t, 10*time.Second, "a coordinate for the peer", func() bool {
		d, ok := a.RTT(b.Name())
		return ok && d > 0 && d < time.Second
	})
	if _, ok := a.RTT("nobody"); ok {
		t.Fatal("RTT for an unknown member")
	}
}

// Invariant: a member a view shows leaving is re-read from serf until it
// is not. serf turns a member it marked leaving back to alive without an
// event (a join intent newer than the leave, as after a quick restart);
// a view that only followed events would show it leaving until its next
// update. Here serf's update event for b arrives saying leaving, as it
// does when a state exchange marked b leaving just before b's tags
// changed, while serf's own status for b is alive.
func TestViewRereadsMemberShownLeaving(t *testing.T) {
	// In a synctest bubble on the in-memory network, so that no probe
	// timing out on a busy machine changes b's status meanwhile.
	synctest.Test(t, func(t *testing.T) {
		f := newBubbleFleet(t)
		lan := func(c *Config) { c.Profile = ProfileLAN } // re-read every second
		a := f.add("a", role.Worker, lan)
		f.add("b", role.Worker, lan)
		status := func() Status {
			m, _ := a.View().Member("b")
			return m.Status
		}
		// Settled first: b's own update from starting to serving must not
		// land after the event below and hide it.
		waitFor(t, 10*time.Second, "a to see b alive and serving", func() bool {
			m, ok := a.View().Member("b")
			return ok && m.Status == StatusAlive && m.State == Serving
		})

		sm, _ := serfMember(a.serf, "b")
		if sm.Name != "b" || sm.Tags[tags.KeyState] != tags.StateServing {
			t.Fatalf("serf's member b on a: %+v, want b serving", sm)
		}
		sm.Status = serf.StatusLeaving
		a.events <- serf.MemberEvent{Type: serf.EventMemberUpdate, Members: []serf.Member{sm}}
		waitFor(t, 5*time.Second, "a's view to show b leaving after the event", func() bool { return status() == StatusLeaving })
		waitFor(t, 10*time.Second, "a's view to show b alive again, as serf has it", func() bool { return status() == StatusAlive })
	})
}
