package cluster

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonkit/carbon/role"
)

// isolateActive cuts the active manager of f off the network (its
// transport held: nothing in, nothing out, as for a frozen process) and
// polls every millisecond until the other manager is writable. It returns
// when the old active last answered Writable true and when the new one
// first did, measured from the cut.
func isolateActive(t *testing.T, f *fleet, timeout time.Duration, also func(old *Node)) (lastOld, firstNew time.Duration, old, next *Node) {
	t.Helper()
	name, _ := waitAgreed(t, f.live, timeout)
	old, next = f.nodes[name], f.nodes[other(name)]
	if !old.Writable() {
		t.Fatalf("the active %s is not writable", name)
	}
	f.net.Partition([]string{f.addrs[name]})
	if also != nil {
		also(old)
	}
	t0 := time.Now()
	lastOld = -1
	for deadline := t0.Add(timeout); ; {
		now := time.Since(t0)
		if old.Writable() {
			lastOld = now
		}
		if next.Writable() {
			return lastOld, now, old, next
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover within %v of isolating %s", timeout, name)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLeaseLapsesBeforeFailover: for every timing profile, an active
// manager whose transport is held (a frozen or cut-off process) stops being
// writable before any other manager can elect itself, and after the
// network heals it stays read-only and steps down under the newer epoch.
// In a synctest bubble, so that the WAN profile's minute of protocol time
// takes moments.
func TestLeaseLapsesBeforeFailover(t *testing.T) {
	for _, p := range []Profile{ProfileLocal, ProfileLAN, ProfileWAN} {
		t.Run(p.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newBubbleFleet(t)
				prof := func(c *Config) { c.Profile = p }
				f.add("m1", role.Manager, prof)
				f.add("m2", role.Manager, prof)
				f.add("w1", role.Worker, prof)
				f.add("w2", role.Worker, prof)
				waitFor(t, 5*time.Minute, "4 members", converged(f.live(), 4))
				lastOld, firstNew, old, next := isolateActive(t, f, 5*time.Minute, nil)
				if lastOld >= firstNew {
					t.Fatalf("%s: the isolated active was writable %v after the cut, the stand-by from %v: two writers", p, lastOld, firstNew)
				}
				t.Logf("%s: old active read-only %v after the cut, stand-by writable at %v", p, lastOld, firstNew)
				f.net.Heal()
				for deadline := time.Now().Add(5 * time.Minute); ; {
					if old.Writable() {
						t.Fatalf("%s: the old active is writable again after the heal", p)
					}
					if a, ok := old.Active(SubDomainManager); ok && a.Name == next.Name() && old.Self().Claim == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: the old active never stepped down", p)
					}
					time.Sleep(time.Millisecond)
				}
			})
		})
	}
}

// TestLeaseLapsesWhenLoopStalls: an active manager whose event loop cannot
// run (here: its lock held, as a stalled process would) loses its lease
// while its transport still answers, and holds it again once the loop
// runs.
func TestLeaseLapsesWhenLoopStalls(t *testing.T) {
	f := newFleet(t, true)
	f.add("m1", role.Manager, nil)
	f.add("m2", role.Manager, nil)
	f.add("w1", role.Worker, nil)
	name, _ := waitAgreed(t, f.live, 10*time.Second)
	n := f.nodes[name]
	waitFor(t, 5*time.Second, "the active writable", n.Writable)
	n.mu.Lock()
	waitFor(t, 5*time.Second, "the stalled active read-only", func() bool { return !n.Writable() })
	n.mu.Unlock()
	waitFor(t, 10*time.Second, "the active writable again once its loop runs", n.Writable)
}

// TestLeasePausedAndCutOff: on the in-memory network in real time, an
// active whose transport is held and whose loop is stalled (a SIGSTOP in
// one process) is read-only before the stand-by is writable.
func TestLeasePausedAndCutOff(t *testing.T) {
	f := newFleet(t, true)
	f.add("m1", role.Manager, nil)
	f.add("m2", role.Manager, nil)
	f.add("w1", role.Worker, nil)
	waitFor(t, 10*time.Second, "3 members", converged(f.live(), 3))
	var stalled *Node
	lastOld, firstNew, _, _ := isolateActive(t, f, 20*time.Second, func(old *Node) { old.mu.Lock(); stalled = old })
	stalled.mu.Unlock()
	if lastOld >= firstNew {
		t.Fatalf("the paused active was writable %v after the pause, the stand-by from %v", lastOld, firstNew)
	}
}

// TestLeaseHeldWhileAStandbyDies: an active manager whose stand-by crashes
// stays writable without a gap while the domain detects the crash. Each
// lease round pings every manager, so until the crash is detected one of
// its targets never answers; the round must renew the lease on the acks
// it has in time, not only once the dead target's ping times out.
func TestLeaseHeldWhileAStandbyDies(t *testing.T) {
	f := newFleet(t, true)
	f.add("m1", role.Manager, nil)
	f.add("m2", role.Manager, nil)
	f.add("w1", role.Worker, nil)
	f.add("w2", role.Worker, nil)
	waitFor(t, 10*time.Second, "4 members", converged(f.live(), 4))
	name, _ := waitAgreed(t, f.live, 10*time.Second)
	active, standby := f.nodes[name], other(name)
	waitFor(t, 5*time.Second, "the active writable", active.Writable)
	f.crash(standby)
	t0 := time.Now()
	samples, gaps := 0, 0
	var firstGap time.Duration = -1
	for deadline := t0.Add(20 * time.Second); ; {
		samples++
		if !active.Writable() {
			gaps++
			if firstGap < 0 {
				firstGap = time.Since(t0)
			}
		}
		if m, ok := memberOf(active, standby); ok && m.Status != StatusAlive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw the crashed %s fail", name, standby)
		}
		time.Sleep(time.Millisecond)
	}
	if gaps > 0 {
		t.Errorf("the active %s was read-only in %d of %d samples while its crashed stand-by was being detected (first after %v)", name, gaps, samples, firstGap)
	}
}

// memberOf returns the member named name in n's view.
func memberOf(n *Node, name string) (Member, bool) {
	for _, m := range n.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
