package lb

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// fakeClock is the clock and the timers of a test state: timers fire in add.
type fakeClock struct {
	t      int64
	timers []*fakeTimer
}

type fakeTimer struct {
	at int64
	f  func()
}

func (c *fakeClock) now() int64 { return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.t += int64(d)
	for {
		fired := false
		for i, tm := range c.timers {
			if tm.at <= c.t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				tm.f()
				fired = true
				break
			}
		}
		if !fired {
			return
		}
	}
}
func (c *fakeClock) afterFunc(d time.Duration, f func()) func() bool {
	tm := &fakeTimer{at: c.t + int64(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		for i, x := range c.timers {
			if x == tm {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}
func newTestState(t testing.TB, clk *fakeClock, opts ...Option) *state {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	o, err := buildOptions("grpc", append([]Option{withSeams(clk.now, r.Uint64, clk.afterFunc), WithLogger(testLogger())}, opts...))
	if err != nil {
		t.Fatal(err)
	}
	return newState(o, "worker", "grpc")
}

func testSet(s *state, p Policy, names ...string) *set {
	ps := make([]peer, len(names))
	st := make([]*memberStats, len(names))
	for i, n := range names {
		ps[i] = peer{name: n, addr: n, weight: 1, rank: i}
		st[i] = s.statsFor(n)
	}
	s.members.Store(int32(len(names)))
	return s.newSet(p, ps, st)
}

func pickName(x *set, key string) string {
	i := x.pick(keyHash(key), key != "", -1)
	if i < 0 {
		return ""
	}
	return x.e[i].name
}

// TestHashStickyAndMovesFew: a key stays on one member, and a joining member
// takes about 1/N of the keys, all of them from the others (none move
// between old members).
func TestHashStickyAndMovesFew(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(ConsistentHash))
	three := testSet(s, ConsistentHash, "a", "b", "c")
	four := testSet(s, ConsistentHash, "a", "b", "c", "d")
	const keys = 10000
	moved, toNew := 0, 0
	share := map[string]int{}
	for k := range keys {
		key := fmt.Sprintf("tenant-%d", k)
		before := pickName(three, key)
		if again := pickName(three, key); again != before {
			t.Fatalf("key %s went to %s then %s", key, before, again)
		}
		share[before]++
		after := pickName(four, key)
		if after != before {
			moved++
			if after == "d" {
				toNew++
			}
		}
	}
	if moved != toNew {
		t.Errorf("%d keys moved between old members", moved-toNew)
	}
	if frac := float64(moved) / keys; frac < 0.15 || frac > 0.35 {
		t.Errorf("%.1f%% of keys moved when a 4th member joined, want about 25%%", 100*frac)
	}
	for n, c := range share {
		if c < keys/3*7/10 || c > keys/3*13/10 {
			t.Errorf("member %s holds %d of %d keys: ring unbalanced %v", n, c, keys, share)
		}
	}
}

// TestHashBoundedLoad: a key whose member is over c times the average load
// goes to another member.
func TestHashBoundedLoad(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(ConsistentHash), WithLoadFactor(1.25))
	x := testSet(s, ConsistentHash, "a", "b", "c")
	home := pickName(x, "k")
	var st *memberStats
	for i := range x.e {
		if x.e[i].name == home {
			st = x.e[i].st
		}
	}
	for range 10 { // 10 calls in flight, all on home
		s.begin(st)
	}
	if got := pickName(x, "k"); got == home {
		t.Errorf("key stayed on %s with 10 of 10 calls in flight", home)
	}
	for range 10 {
		s.finish(st, 0, false, false)
	}
	if got := pickName(x, "k"); got != home {
		t.Errorf("key went to %s, not back to %s, once the load was gone", got, home)
	}
}

// TestEjectionAndReturn: consecutive failures eject a member for the base
// time, doubled on a second ejection; it returns when that ends; no more
// than the cap is ejected at once.
func TestEjectionAndReturn(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(RoundRobin), WithEjection(Ejection{Consecutive: 3, BaseTime: time.Second, MaxTime: 10 * time.Second, MaxEjectedPercent: 50}))
	x := testSet(s, RoundRobin, "a", "b", "c", "d")
	stA, stB, stC := x.e[0].st, x.e[1].st, x.e[2].st
	fail := func(st *memberStats, n int) {
		for range n {
			s.begin(st)
			s.finish(st, 0, true, true)
		}
	}
	count := func() map[string]int {
		m := map[string]int{}
		for range 400 {
			m[pickName(x, "")]++
		}
		return m
	}
	fail(stA, 2)
	if count()["a"] == 0 {
		t.Fatal("a ejected after 2 failures, want 3")
	}
	fail(stA, 1)
	if got := count(); got["a"] != 0 || got["b"] == 0 {
		t.Fatalf("after 3 failures a still picked or others not: %v", got)
	}
	clk.add(999 * time.Millisecond)
	if count()["a"] != 0 {
		t.Fatal("a back before its ejection ended")
	}
	clk.add(2 * time.Millisecond)
	if count()["a"] == 0 {
		t.Fatal("a not back after its ejection ended")
	}
	fail(stA, 3) // second ejection: 2 s
	clk.add(1500 * time.Millisecond)
	if count()["a"] != 0 {
		t.Fatal("second ejection shorter than 2 s")
	}
	// Cap: 50% of 4 members is 2; a is out, b may go, c may not.
	fail(stB, 3)
	fail(stC, 3)
	got := count()
	if got["b"] != 0 || got["c"] == 0 {
		t.Errorf("cap of 50%%: want b ejected and c kept, got %v", got)
	}
	if n := stA.ejectN.Load() + stB.ejectN.Load() + stC.ejectN.Load(); n != 3 {
		t.Errorf("ejections = %d, want 3", n)
	}
	// A success resets the count of consecutive failures.
	clk.add(time.Minute)
	s.begin(stC)
	s.finish(stC, 0, false, false)
	fail(stC, 2)
	s.begin(stC)
	s.finish(stC, 0, false, false)
	fail(stC, 2)
	if count()["c"] == 0 {
		t.Error("c ejected although a success broke its run of failures")
	}
}

// TestSlowStart: a member that becomes serving after the balancer started
// gets a small share at first and a full one after the window.
func TestSlowStart(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(RoundRobin), WithSlowStart(10*time.Second))
	build := func() *set {
		ps := []peer{{name: "a", weight: 1}, {name: "b", weight: 1}, {name: "c", weight: 1, since: 1}}
		st := []*memberStats{s.statsFor("a"), s.statsFor("b"), s.statsFor("c")}
		return s.newSet(RoundRobin, ps, st)
	}
	share := func(x *set) float64 {
		n := 0
		for range 3000 {
			if pickName(x, "") == "c" {
				n++
			}
		}
		return float64(n) / 3000
	}
	if f := share(build()); f > 0.1 {
		t.Errorf("new member's share at start %.2f, want about 0.04", f)
	}
	clk.add(11 * time.Second)
	if f := share(build()); f < 0.3 {
		t.Errorf("new member's share after the window %.2f, want 1/3", f)
	}
}

// TestLeastLoadedPrefersFast: with latencies measured, p2c sends less to
// the slow member.
func TestLeastLoadedPrefersFast(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk)
	x := testSet(s, LeastLoaded, "a", "b", "c")
	got := map[string]int{}
	for range 3000 {
		i := x.pick(0, false, -1)
		st := x.e[i].st
		start := clk.t
		s.begin(st)
		d := time.Millisecond
		if x.e[i].name == "a" {
			d = 10 * time.Millisecond
		}
		clk.add(d)
		s.finish(st, start, false, false)
		got[x.e[i].name]++
	}
	if got["a"] > 3000/10 {
		t.Errorf("slow member got %d of 3000 calls: %v", got["a"], got)
	}
}

func TestWeights(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(RoundRobin))
	ps := []peer{{name: "a", weight: 3}, {name: "b", weight: 1}}
	x := s.newSet(RoundRobin, ps, []*memberStats{s.statsFor("a"), s.statsFor("b")})
	got := map[string]int{}
	for range 400 {
		got[pickName(x, "")]++
	}
	if got["a"] != 300 || got["b"] != 100 {
		t.Errorf("weights 3:1 gave %v", got)
	}
}

func TestActiveFirstOrder(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(ActiveFirst))
	ps := []peer{{name: "m1", weight: 1, rank: 1}, {name: "m2", weight: 1, rank: 0}, {name: "m3", weight: 1, rank: 2}}
	x := s.newSet(ActiveFirst, ps, []*memberStats{s.statsFor("m1"), s.statsFor("m2"), s.statsFor("m3")})
	if got := pickName(x, ""); got != "m2" {
		t.Fatalf("picked %s, want the active m2", got)
	}
	x.e[1].st.ejected.Store(clk.t + int64(time.Hour))
	if got := pickName(x, ""); got != "m1" {
		t.Fatalf("with m2 out picked %s, want the first stand-by m1", got)
	}
}

func TestNearest(t *testing.T) {
	clk := &fakeClock{t: 1}
	rtt := map[string]time.Duration{"a": 5 * time.Millisecond, "b": time.Millisecond, "c": 3 * time.Millisecond}
	s := newTestState(t, clk, WithPolicy(Nearest), WithRTT(func(m string) (time.Duration, bool) { d, ok := rtt[m]; return d, ok }))
	x := testSet(s, Nearest, "a", "b", "c")
	if got := pickName(x, ""); got != "b" {
		t.Fatalf("picked %s, want the nearest b", got)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []Option{WithPolicy(Policy(99)), WithEndpoint(""), WithSlowStart(-1), WithLoadFactor(1), WithEjection(Ejection{MaxEjectedPercent: 101})} {
		if _, err := buildOptions("grpc", []Option{o}); err == nil {
			t.Errorf("bad option accepted")
		}
	}
	if _, err := Dial(nil, "worker"); err == nil {
		t.Error("Dial(nil) accepted")
	}
}

// TestRingIndex: the bucketed ring lookup finds the same point as a search
// of the whole ring, for rings of every size and for weights.
func TestRingIndex(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(ConsistentHash))
	for _, n := range []int{1, 2, 3, 7, 50} {
		ps := make([]peer, n)
		st := make([]*memberStats, n)
		for i := range ps {
			ps[i] = peer{name: fmt.Sprintf("m%02d", i), weight: float64(1 + i%3)}
			st[i] = s.statsFor(ps[i].name)
		}
		x := s.newSet(ConsistentHash, ps, st)
		for k := range 5000 {
			key := fmt.Sprintf("key-%d", k)
			h := xxhash.Sum64String(key)
			want := sort.Search(len(x.ring), func(i int) bool { return x.ring[i].hash >= h }) % len(x.ring)
			if got := x.ringStart(h); got != want {
				t.Fatalf("%d members, key %s: ring point %d, want %d", n, key, got, want)
			}
		}
	}
}

// TestSlowStartRefresh: the slow-start share is computed when the set is
// built and raised by refreshSlow (never on a pick), and the balancer's
// timer raises it until the window ends, then stops; Close stops it too.
func TestSlowStartRefresh(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(LeastLoaded), WithSlowStart(10*time.Second))
	ps := []peer{{name: "a", weight: 1}, {name: "b", weight: 1, since: 1}}
	x := s.newSet(LeastLoaded, ps, []*memberStats{s.statsFor("a"), s.statsFor("b")})
	share := func() float64 { return float64(x.e[1].admitP.Load()) / fullAdmit }
	if f := share(); f < 0.09 || f > 0.11 {
		t.Fatalf("share at start %.2f, want 0.1", f)
	}
	if x.e[0].admitP.Load() != fullAdmit {
		t.Fatal("a member not slowly starting is not fully admitted")
	}
	b := &lbBalancer{policy: LeastLoaded}
	b.setSlow(x)
	if len(clk.timers) != 1 {
		t.Fatalf("%d timers after a set with a slow start, want 1", len(clk.timers))
	}
	clk.add(5 * time.Second)
	if f := share(); f < 0.45 || f > 0.55 {
		t.Errorf("share half-way %.2f, want 0.5", f)
	}
	clk.add(6 * time.Second)
	if share() != 1 || x.slowNext.Load() != 0 || len(clk.timers) != 0 {
		t.Errorf("after the window: share %.2f, next refresh %d, %d timers; want 1, 0, 0", share(), x.slowNext.Load(), len(clk.timers))
	}

	// Close stops the timer.
	x = s.newSet(LeastLoaded, []peer{{name: "a", weight: 1}, {name: "c", weight: 1, since: clk.t}}, []*memberStats{s.statsFor("a"), s.statsFor("c")})
	b.setSlow(x)
	b.stopSlow()
	if len(clk.timers) != 0 {
		t.Errorf("%d timers after Close, want 0", len(clk.timers))
	}
}

// TestCloseEndsEjections: closing the state cancels the ejection timers
// and brings the members back.
func TestCloseEndsEjections(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk, WithPolicy(RoundRobin), WithEjection(Ejection{Consecutive: 1, MaxEjectedPercent: 50}))
	x := testSet(s, RoundRobin, "a", "b")
	s.begin(x.e[0].st)
	s.finish(x.e[0].st, 0, true, true)
	if x.usable(0, -1) || len(clk.timers) != 1 {
		t.Fatalf("a usable %v with %d timers after a failure, want ejected with 1 timer", x.usable(0, -1), len(clk.timers))
	}
	s.close()
	if !x.usable(0, -1) || len(clk.timers) != 0 {
		t.Errorf("after close: a usable %v, %d timers; want usable, 0", x.usable(0, -1), len(clk.timers))
	}
}

// A member whose first call was slow (a cold start) is sidelined by least
// loaded until that sample is staleLatency old, and then gets its share
// back once it answers fast: the forgotten sample must not weigh on the
// new one. (Blended, the old sample would keep the member's latency high
// after fast answers, and the member sidelined long after it recovered.)
func TestSlowOnceGetsItsShareBack(t *testing.T) {
	clk := &fakeClock{t: 1}
	s := newTestState(t, clk)
	x := testSet(s, LeastLoaded, "a", "b", "c")
	slowed := false
	got := map[string]int{}
	for clk.t < int64(20*time.Second) {
		i := x.pick(0, false, -1)
		st := x.e[i].st
		start := clk.t
		s.begin(st)
		d := time.Millisecond
		if x.e[i].name == "a" && !slowed {
			d, slowed = 50*time.Millisecond, true
		}
		clk.add(d)
		s.finish(st, start, false, false)
		if clk.t > int64(10*time.Second) {
			got[x.e[i].name]++
		}
	}
	total := got["a"] + got["b"] + got["c"]
	if got["a"]*5 < total {
		t.Errorf("from 10 s on, the member slow once got %d of %d calls (%v), want at least a fifth", got["a"], total, got)
	}
}
