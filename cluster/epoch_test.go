package cluster

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
)

// first is the first of two results.
func first[A, B any](a A, _ B) A { return a }

// TestNextEpochBounded: the next epoch is above what was seen and never
// wraps, even at the bound; no name yields a claim of 0 or a round's
// lowest epoch.
func TestNextEpochBounded(t *testing.T) {
	e, ok := nextEpoch(0, "m1")
	if !ok || e == 0 || EpochRound(e) != 1 {
		t.Fatalf("nextEpoch(0) = %d, %v; want round 1", e, ok)
	}
	top := uint64(MaxEpochRound)<<epochDiscBits | 0xfff0
	e, ok = nextEpoch(top, "m1")
	if ok || EpochRound(e) != MaxEpochRound || e == 0 {
		t.Fatalf("at the bound nextEpoch = %#x, %v; want the bound's round, saturated", e, ok)
	}
	if !validClaim(e) || validClaim(e+1<<epochDiscBits) || validClaim(math.MaxUint64) || validClaim(0) {
		t.Fatal("validClaim does not follow MaxEpochRound")
	}
	// A name whose hash has 16 low zero bits still gets a non-zero
	// discriminator.
	for i := range 1 << 22 {
		name := fmt.Sprintf("n%d", i)
		h := fnv.New32a()
		h.Write([]byte(name))
		if h.Sum32()&0xffff != 0 {
			continue
		}
		if e, _ := nextEpoch(0, name); e&0xffff == 0 {
			t.Fatalf("name %q yields discriminator 0", name)
		}
		return
	}
	t.Fatal("no name with a zero hash found")
}

// TestForgedClaimIgnored: electAll and decideClaim ignore a claim above
// MaxEpochRound.
func TestForgedClaimIgnored(t *testing.T) {
	mgr := func(name string, claim uint64) Member {
		return Member{Name: name, Role: role.Manager, SubDomain: "mgt", State: Serving, Claim: claim}
	}
	real, forged := mgr("m1", 5<<epochDiscBits|7), mgr("rogue", math.MaxUint64)
	actives, _ := electAll([]*Member{&real, &forged})
	if a := actives["mgt"]; a.Name != "m1" {
		t.Fatalf("active = %q, want m1 (the forged claim must be ignored)", a.Name)
	}
	if got := decideClaim([]*Member{&real, &forged}, &real, 0, real.Claim, true); got != real.Claim {
		t.Fatalf("the real active withdrew before a forged claim: %d", got)
	}
}

// TestHugeClaimNeverRunsEpochsBackwards: a peer with the domain's key
// claims MaxUint64 and leaves. No node's epoch of the manager sub-domain
// ever goes backwards, the real active stays active throughout, and after
// the peer is gone the domain still has an active manager whose next
// failover epoch is above the old one.
func TestHugeClaimNeverRunsEpochsBackwards(t *testing.T) {
	key := []byte("0123456789abcdef")
	cfg := func(name string, r role.Role, seeds ...string) Config {
		c := local("epoch.test", r)
		c.NodeName, c.Key, c.Seeds = name, key, seeds
		return c
	}
	m1 := start(t, cfg("m1", role.Manager))
	m2 := start(t, cfg("m2", role.Manager, addrOf(m1)))
	w1 := start(t, cfg("w1", role.Worker, addrOf(m1)))
	nodes := []*Node{m1, m2, w1}
	waitFor(t, 10*time.Second, "3 members", converged(nodes, 3))
	waitFor(t, 10*time.Second, "m1 writable", m1.Writable)
	before := m1.View().Epoch("mgt")

	// Record every epoch every node shows, as it changes.
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var backwards []string
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for v := range n.Watch(ctx) {
				e := v.Epoch("mgt")
				if a, ok := v.Active("mgt"); ok && a.Name != "m1" && a.Name != "m2" {
					mu.Lock()
					backwards = append(backwards, fmt.Sprintf("%s sees %s active", n.Name(), a.Name))
					mu.Unlock()
				}
				if e != 0 && e < last {
					mu.Lock()
					backwards = append(backwards, fmt.Sprintf("%s: epoch %d after %d", n.Name(), e, last))
					mu.Unlock()
				}
				if e != 0 {
					last = e
				}
			}
		}()
	}

	r := rogue(t, "rogue", key, map[string]string{
		tags.KeyDomain: "epoch.test", tags.KeyRole: tags.RoleManager, tags.KeySubDomain: "mgt",
		tags.KeyState: tags.StateServing, tags.KeyClaim: tags.EncodeEpoch(math.MaxUint64),
	}, addrOf(m1))
	waitFor(t, 10*time.Second, "every node to see the rogue", func() bool {
		for _, n := range nodes {
			if m, ok := n.View().Member("rogue"); !ok || m.Status != StatusAlive {
				return false
			}
		}
		return true
	})
	if !m1.Writable() {
		t.Error("the real active lost writability to a forged claim")
	}
	if err := r.Leave(); err != nil {
		t.Fatal(err)
	}
	r.Shutdown()
	waitFor(t, 10*time.Second, "every node to see the rogue gone", func() bool {
		for _, n := range nodes {
			if m, ok := n.View().Member("rogue"); ok && m.Status == StatusAlive {
				return false
			}
		}
		return true
	})
	// A failover after the forged claim: the stand-by's epoch is above the
	// old active's.
	t0 := time.Now()
	m1.Close()
	waitFor(t, 10*time.Second, "m2 writable after m1 crashed", m2.Writable)
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("failover took %v", d)
	}
	if after := m2.Epoch(); after <= before {
		t.Errorf("m2's epoch %d is not above m1's %d", after, before)
	}
	cancel()
	wg.Wait()
	if len(backwards) > 0 {
		t.Fatalf("epochs went backwards or a rogue was active: %v", backwards)
	}
}
