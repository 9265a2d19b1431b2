package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

// keyHomes calls Get once per key and returns the member that served each.
func keyHomes(t *testing.T, cc grpc.ClientConnInterface, keys int) map[string]string {
	t.Helper()
	c := testpb.NewGuardClient(cc)
	m := map[string]string{}
	for k := range keys {
		key := fmt.Sprint("tenant-", k)
		ctx, cancel := context.WithTimeout(WithKey(context.Background(), key), 5*time.Second)
		r, err := c.Get(ctx, &testpb.Item{Key: key}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		m[key] = r.GetValue()
	}
	return m
}

func TestHashOverGRPC(t *testing.T) {
	c := startWorkers(t, 3)
	cc, err := Dial(c.observer, "worker", WithPolicy(ConsistentHash), WithLogger(testLogger()), WithSlowStart(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	const keys = 60
	var before map[string]string
	waitFor(t, 10*time.Second, "keys on all three workers", func() bool {
		before = keyHomes(t, cc, keys)
		seen := map[string]bool{}
		for _, v := range before {
			seen[v] = true
		}
		return len(seen) == 3
	})
	// A loaded machine may make the view flap (a member suspected, then
	// alive again), which moves keys for a moment: ask until stable.
	waitFor(t, 10*time.Second, "the same member for every key twice in a row", func() bool {
		again := keyHomes(t, cc, keys)
		same := fmt.Sprint(again) == fmt.Sprint(before)
		before = again
		return same
	})
	c.addWorker(t, "w3", nil)
	c.waitRoutable(t, c.observer, "worker", 4)
	var after map[string]string
	waitFor(t, 10*time.Second, "keys on the new worker", func() bool {
		after = keyHomes(t, cc, keys)
		for _, v := range after {
			if v == "w3" {
				return true
			}
		}
		return false
	})
	moved := 0
	for k, v := range after {
		if v != before[k] {
			moved++
			if v != "w3" {
				t.Errorf("key %s moved from %s to old member %s", k, before[k], v)
			}
		}
	}
	if moved > keys/2 {
		t.Errorf("%d of %d keys moved when a 4th member joined", moved, keys)
	}
}

// TestSlowMemberGetsLess: with one worker 10x slower, least-loaded sends it
// well under the third round robin would.
func TestSlowMemberGetsLess(t *testing.T) {
	c := startWorkers(t, 3)
	cc, err := Dial(c.observer, "worker", WithLogger(testLogger()), WithSlowStart(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	waitFor(t, 10*time.Second, "calls on every worker", func() bool {
		resetCounts(c.workers)
		get(t, cc, 30, nil)
		for _, n := range counts(c.workers) {
			if n == 0 {
				return false
			}
		}
		return true
	})
	for i, b := range c.workers {
		b.delay.Store(int64(2 * time.Millisecond))
		if i == 0 {
			b.delay.Store(int64(20 * time.Millisecond))
		}
	}
	// Batches until one gives the slow worker at most 20 %: the first
	// includes the time the latency average takes to follow the new
	// delays, and on a busy machine every call waits for the CPU, which
	// blurs 2 ms against 20 ms for a while; round robin would give it a
	// third of every batch.
	const calls, par = 240, 6
	waitFor(t, 15*time.Second, "a batch where the slow worker serves at most 20 % of calls", func() bool {
		got := batch(t, cc, c.workers, calls, par)
		share := float64(got["w0"]) / calls
		if share > 0.2 {
			t.Logf("slow worker served %.0f%% of calls: %v", 100*share, got)
		}
		return share <= 0.2
	})
}

func TestEjectionOverGRPC(t *testing.T) {
	c := startWorkers(t, 3)
	cc, err := Dial(c.observer, "worker", WithPolicy(RoundRobin), WithLogger(testLogger()),
		WithEjection(Ejection{Consecutive: 3, BaseTime: 3 * time.Second}), WithSlowStart(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	waitFor(t, 10*time.Second, "calls on every worker", func() bool {
		resetCounts(c.workers)
		get(t, cc, 30, nil)
		return counts(c.workers)["w1"] > 0
	})
	bad := c.workers[1]
	bad.fail.Store(true)
	cl := testpb.NewGuardClient(cc)
	failures := 0
	for range 30 {
		if _, err := cl.Get(context.Background(), &testpb.Item{}); status.Code(err) == codes.Unavailable {
			failures++
		}
	}
	if failures < 3 || failures > 6 {
		t.Errorf("%d calls failed before the member was ejected, want 3", failures)
	}
	n := bad.calls.Load()
	for range 10 {
		if _, err := cl.Get(context.Background(), &testpb.Item{}); err != nil {
			t.Errorf("call while the failing member is ejected: %v", err)
		}
	}
	if d := bad.calls.Load() - n; d != 0 {
		t.Errorf("ejected member served %d calls", d)
	}
	bad.fail.Store(false)
	waitFor(t, 10*time.Second, "the ejected member back in service", func() bool {
		n := bad.calls.Load()
		get(t, cc, 10, nil)
		return bad.calls.Load() > n
	})
}

// startManagers starts two managers of sub-domain "mgt" with role Guards,
// and waits for one to be active.
func startManagers(t *testing.T, c *testCluster) []*backend {
	t.Helper()
	seed := []string{c.workers[0].node.Self().Addr}
	m := []*backend{
		startBackend(t, c.domain, memberSpec{name: "m1", role: role.Manager, seeds: seed, guard: true}),
		startBackend(t, c.domain, memberSpec{name: "m2", role: role.Manager, seeds: seed, guard: true}),
	}
	c.waitRoutable(t, c.observer, "mgt", 2)
	waitFor(t, 15*time.Second, "one active manager that all agree on", func() bool {
		a, ok := c.observer.View().Active("mgt")
		if !ok {
			return false
		}
		for _, b := range m {
			if b.node.Writable() != (b.name == a.Name) {
				return false
			}
			if x, ok := b.node.View().Active("mgt"); !ok || x.Name != a.Name {
				return false
			}
		}
		return true
	})
	return m
}

func TestWritesFollowActiveManager(t *testing.T) {
	c := startWorkers(t, 2)
	mgrs := startManagers(t, c)
	reads, err := Dial(c.observer, "worker", WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer reads.Close()
	writes, err := Dial(c.observer, "mgt", WithPolicy(ActiveFirst), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer writes.Close()
	r := NewRouter(reads, writes)
	cl := testpb.NewGuardClient(r)
	put := func(n int, phase string) map[string]int {
		got := map[string]int{}
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := cl.Put(ctx, &testpb.Item{}, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				t.Fatalf("Put (%s): %v", phase, err)
			}
			got[res.GetValue()]++
		}
		return got
	}
	// Every Put succeeds, so each was served by a manager whose Guard
	// found it writable; when the observer's view did not change during the
	// batch (a loaded machine makes serf views flap), all went to the
	// active manager.
	v0 := c.observer.View()
	act, _ := v0.Active("mgt")
	if got := put(20, "before"); got[act.Name] != 20 {
		if c.observer.View() == v0 {
			t.Fatalf("writes went to %v, want all on the active %s", got, act.Name)
		}
		t.Logf("view changed during the batch: writes went to %v", got)
	}
	resetCounts(c.workers)
	get(t, r, 20, nil)
	if got := counts(c.workers); got["w0"]+got["w1"] != 20 {
		t.Errorf("reads did not all go to workers: %v", got)
	}
	// Fail-over: the active manager leaves (its gRPC server stays up and
	// would refuse writes as read-only if it were still picked).
	var old, other *backend
	for _, m := range mgrs {
		if m.name == act.Name {
			old = m
		} else {
			other = m
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := old.node.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitFor(t, 15*time.Second, "the stand-by to take over", func() bool {
		a, ok := c.observer.View().Active("mgt")
		return ok && a.Name == other.name
	})
	v1 := c.observer.View()
	if got := put(20, "after fail-over"); got[other.name] != 20 {
		if c.observer.View() == v1 {
			t.Fatalf("after fail-over writes went to %v, want all on %s", got, other.name)
		}
		t.Logf("view changed during the batch: writes went to %v", got)
	}
}

// fakeConn answers Invoke from a script.
type fakeConn struct {
	grpc.ClientConnInterface
	mu    sync.Mutex
	calls []string
	errs  []error
}

func (f *fakeConn) Invoke(ctx context.Context, method string, _, _ any, _ ...grpc.CallOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func TestRouterRetriesReadOnceOnce(t *testing.T) {
	ro := (&role.ReadOnlyError{Role: role.Manager}).GRPCStatus().Err()
	reads := &fakeConn{}
	writes := &fakeConn{errs: []error{ro, ro, ro}}
	r := NewRouter(reads, writes)
	err := r.Invoke(context.Background(), "/carbon.test.v1.Guard/Put", nil, nil)
	if !role.IsReadOnly(err) {
		t.Fatalf("err = %v, want the read-only rejection of the retry", err)
	}
	if len(writes.calls) != 2 {
		t.Errorf("writes got %d calls, want 2 (one retry)", len(writes.calls))
	}
	writes.errs = []error{ro}
	writes.calls = nil
	if err := r.Invoke(context.Background(), "/carbon.test.v1.Guard/Put", nil, nil); err != nil || len(writes.calls) != 2 {
		t.Errorf("retry: err %v after %d calls, want success after 2", err, len(writes.calls))
	}
	other := status.Error(codes.Internal, "boom")
	writes.errs, writes.calls = []error{other}, nil
	if err := r.Invoke(context.Background(), "/carbon.test.v1.Guard/Put", nil, nil); !errors.Is(err, other) || len(writes.calls) != 1 {
		t.Errorf("other error: err %v after %d calls, want no retry", err, len(writes.calls))
	}
	if err := r.Invoke(context.Background(), "/carbon.test.v1.Guard/Get", nil, nil); err != nil || len(reads.calls) != 1 {
		t.Errorf("read not sent to reads: %v, %v", err, reads.calls)
	}
}

// httpGet sends n GETs through rt and returns who served them.
func httpGet(t *testing.T, rt http.RoundTripper, n int) map[string]int {
	t.Helper()
	cl := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	got := map[string]int{}
	for range n {
		resp, err := cl.Get("http://worker/x")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			got[fmt.Sprint(resp.StatusCode)]++
			continue
		}
		got[string(b)]++
	}
	return got
}

func TestHTTPTransport(t *testing.T) {
	c := startWorkers(t, 3)
	rt := NewTransport(c.observer, "worker", WithPolicy(RoundRobin), WithLogger(testLogger()),
		WithEjection(Ejection{Consecutive: 2, BaseTime: time.Hour}))
	defer rt.(*Transport).Close()
	got := httpGet(t, rt, 90)
	for _, w := range []string{"w0", "w1", "w2"} {
		if got[w] < 25 || got[w] > 35 {
			t.Errorf("spread: %v", got)
		}
	}
	// A member whose HTTP server is down: idempotent GETs are retried on
	// another member, and after 2 failures it is ejected.
	c.workers[2].stopServers()
	got = httpGet(t, rt, 30)
	if got["w2"] != 0 || got["w0"]+got["w1"] != 30 {
		t.Errorf("with w2's server down: %v", got)
	}
	// A drained member gets nothing once the view changes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.workers[1].node.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitRoutable(t, c.observer, "worker", 2)
	if got := httpGet(t, rt, 20); got["w0"] != 20 {
		t.Errorf("after w1 drained (w2 ejected): %v", got)
	}
	// A POST is not retried.
	c.workers[0].stopServers()
	resp, err := (&http.Client{Transport: rt}).Post("http://worker/x", "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Error("POST to a dead member succeeded")
	}
}

func TestHTTPSlowAndHash(t *testing.T) {
	c := startWorkers(t, 3)
	rt := NewTransport(c.observer, "worker", WithLogger(testLogger()), WithSlowStart(0))
	defer rt.(*Transport).Close()
	httpGet(t, rt, 30)
	c.workers[0].delay.Store(int64(20 * time.Millisecond))
	for _, b := range c.workers[1:] {
		b.delay.Store(int64(2 * time.Millisecond))
	}
	var mu sync.Mutex
	total := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := httpGet(t, rt, 40)
			mu.Lock()
			for k, v := range g {
				total[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if share := float64(total["w0"]) / 240; share > 0.2 {
		t.Errorf("slow member got %.0f%%: %v", 100*share, total)
	}
	// Hashing by a request header.
	hrt := NewTransport(c.observer, "worker", WithPolicy(ConsistentHash), WithLogger(testLogger()),
		WithRequestKey(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	defer hrt.(*Transport).Close()
	cl := &http.Client{Transport: hrt}
	for _, tenant := range []string{"a", "b", "c", "d"} {
		homes := map[string]bool{}
		for range 5 {
			req, _ := http.NewRequest("GET", "http://worker/", nil)
			req.Header.Set("X-Tenant", tenant)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			homes[string(b)] = true
		}
		if len(homes) != 1 {
			t.Errorf("tenant %s served by %v", tenant, homes)
		}
	}
}

func TestReverseProxy(t *testing.T) {
	c := startWorkers(t, 2)
	p := NewReverseProxy(c.observer, "worker", WithPolicy(RoundRobin), WithLogger(testLogger()))
	defer p.Transport.(*Transport).Close()
	got := map[string]int{}
	for range 10 {
		rec := &recorder{h: http.Header{}}
		req, _ := http.NewRequest("GET", "http://gateway/x", nil)
		p.ServeHTTP(rec, req)
		got[rec.body]++
	}
	if got["w0"] != 5 || got["w1"] != 5 {
		t.Errorf("proxy spread %v", got)
	}
	_ = cluster.Serving
}

type recorder struct {
	h    http.Header
	code int
	body string
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(c int)           { r.code = c }
func (r *recorder) Write(b []byte) (int, error) { r.body += string(b); return len(b), nil }
