package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
)

// transcript runs one call of method with key and returns everything the
// client sees: messages, the "x-" headers and trailers, and the status
// with its details.
func transcript(t *testing.T, cc grpc.ClientConnInterface, method, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-req", "a", "x-req", "b"), 10*time.Second)
	defer cancel()
	c := testpb.NewGuardClient(cc)
	var hdr, trl metadata.MD
	var msgs []string
	var err error
	in := &testpb.Item{Key: key, Value: "v"}
	recvAll := func(recv func() (*testpb.Item, error)) error {
		for {
			m, err := recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			msgs = append(msgs, m.Key+"="+m.Value)
		}
	}
	switch method {
	case "Get", "Put":
		f := c.Get
		if method == "Put" {
			f = c.Put
		}
		var m *testpb.Item
		m, err = f(ctx, in, grpc.Header(&hdr), grpc.Trailer(&trl))
		if m != nil {
			msgs = append(msgs, m.Key+"="+m.Value)
		}
	case "List", "Import":
		f := c.List
		if method == "Import" {
			f = c.Import
		}
		var s grpc.ServerStreamingClient[testpb.Item]
		if s, err = f(ctx, in); err == nil {
			err = recvAll(s.Recv)
			hdr, _ = s.Header()
			trl = s.Trailer()
		}
	case "Sum", "Upload":
		f := c.Sum
		if method == "Upload" {
			f = c.Upload
		}
		var s grpc.ClientStreamingClient[testpb.Item, testpb.Item]
		if s, err = f(ctx); err == nil {
			for i := range 3 {
				_ = s.Send(&testpb.Item{Key: key, Value: fmt.Sprint(i)})
			}
			var m *testpb.Item
			if m, err = s.CloseAndRecv(); m != nil {
				msgs = append(msgs, m.Key+"="+m.Value)
			}
			hdr, _ = s.Header()
			trl = s.Trailer()
		}
	case "Watch", "Sync":
		f := c.Watch
		if method == "Sync" {
			f = c.Sync
		}
		var s grpc.BidiStreamingClient[testpb.Item, testpb.Item]
		if s, err = f(ctx); err == nil {
			for i := range 3 {
				if err = s.Send(&testpb.Item{Key: key, Value: fmt.Sprint(i)}); err != nil {
					break
				}
				var m *testpb.Item
				if m, err = s.Recv(); err != nil {
					break
				}
				msgs = append(msgs, m.Key+"="+m.Value)
			}
			if err == nil {
				_ = s.CloseSend()
				err = recvAll(s.Recv)
			} else if errors.Is(err, io.EOF) {
				_, err = s.Recv()
			}
			hdr, _ = s.Header()
			trl = s.Trailer()
		}
	default:
		t.Fatalf("no scenario for %s", method)
	}
	st := status.Convert(err)
	var details []string
	for _, d := range st.Proto().GetDetails() {
		details = append(details, prototext.Format(d))
	}
	return fmt.Sprintf("msgs=%q\nheader=%s\ntrailer=%s\nstatus=%s %q %v", msgs, xKeys(hdr), xKeys(trl), st.Code(), st.Message(), details)
}

func xKeys(md metadata.MD) string {
	var out []string
	for k, v := range md {
		if strings.HasPrefix(k, "x-") {
			out = append(out, k+"="+strings.Join(v, ","))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

type proxyRig struct {
	worker, manager *upstream
	workerCC        *grpc.ClientConn // direct
	managerCC       *grpc.ClientConn // direct
	proxy           *grpc.ClientConn // a client of the proxy
}

// newProxyRig starts a worker (read-only Guard) and a manager upstream
// and a proxy in front of both.
func newProxyRig(t *testing.T, opts ...ProxyOption) *proxyRig {
	r := &proxyRig{
		worker:  startUpstream(t, "worker", role.NewGuard(role.Static(role.Worker))),
		manager: startUpstream(t, "manager", role.NewGuard(role.Static(role.Manager))),
	}
	r.workerCC, r.managerCC = dialBufconn(t, r.worker.lis), dialBufconn(t, r.manager.lis)
	r.proxy = serveProxy(t, NewProxy(r.workerCC, r.managerCC, opts...))
	return r
}

func TestProxyPassesEverythingThroughUnchanged(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testPassThrough(t, newProxyRig(t)) })
	t.Run("retry", func(t *testing.T) { testPassThrough(t, newProxyRig(t, ProxyRetryReads())) })
	// Without descriptors, every call takes the general stream path.
	t.Run("rules", func(t *testing.T) {
		testPassThrough(t, newProxyRig(t, ProxyDescriptors(nil),
			ProxyReadMethods("/carbon.test.v1.Guard/Get", "/carbon.test.v1.Guard/List", "/carbon.test.v1.Guard/Sum", "/carbon.test.v1.Guard/Watch"),
			ProxyWriteMethods("/carbon.test.v1.Guard/Put", "/carbon.test.v1.Guard/Import", "/carbon.test.v1.Guard/Upload", "/carbon.test.v1.Guard/Sync")))
	})
}

func testPassThrough(t *testing.T, r *proxyRig) {
	cases := []struct {
		method string
		write  bool
	}{
		{"Get", false}, {"Put", true},
		{"List", false}, {"Import", true},
		{"Sum", false}, {"Upload", true},
		{"Watch", false}, {"Sync", true},
	}
	for _, c := range cases {
		for _, key := range []string{"k", "fail"} {
			t.Run(c.method+"/"+key, func(t *testing.T) {
				direct := r.workerCC
				if c.write {
					direct = r.managerCC
				}
				want := transcript(t, direct, c.method, key)
				got := transcript(t, r.proxy, c.method, key)
				if got != want {
					t.Fatalf("through the proxy:\n%s\ndirect:\n%s", got, want)
				}
				// A transcript that shows nothing would match trivially.
				for _, part := range []string{"x-echo=a,b", "x-trail="} {
					if !strings.Contains(got, part) {
						t.Fatalf("transcript lacks %q:\n%s", part, got)
					}
				}
				if key == "fail" && !strings.Contains(got, `Aborted "upstream says no"`) || !strings.Contains(got, "TEST_FAILURE") == (key == "fail") {
					t.Fatalf("error status not as sent:\n%s", got)
				}
			})
		}
	}
}

func TestProxyRoutesWritesToManagersOnly(t *testing.T) {
	r := newProxyRig(t)
	for _, m := range []string{"Put", "Import", "Upload", "Sync"} {
		if got := transcript(t, r.proxy, m, "k"); !strings.Contains(got, "x-served-by=manager") || !strings.Contains(got, "status=OK") {
			t.Fatalf("%s through the proxy:\n%s", m, got)
		}
	}
	for _, m := range []string{"Get", "List", "Sum", "Watch"} {
		if got := transcript(t, r.proxy, m, "k"); !strings.Contains(got, "x-served-by=worker") {
			t.Fatalf("%s through the proxy:\n%s", m, got)
		}
	}
	for _, m := range []string{"Put", "Import", "Upload", "Sync"} {
		if n := r.worker.count(m); n != 0 {
			t.Fatalf("%d %s calls reached the worker", n, m)
		}
		if n := r.manager.count(m); n != 1 {
			t.Fatalf("%d %s calls reached the manager, want 1", n, m)
		}
	}
}

func TestProxyMisplacedWriteStopsAtWorkerGuard(t *testing.T) {
	// A wrong rule sends every Guard method to the workers: their role
	// Guard is the second line, and its refusal reaches the client as sent.
	r := newProxyRig(t, ProxyReadMethods("/carbon.test.v1.Guard/*"))
	for _, m := range []string{"Put", "Import", "Upload", "Sync"} {
		got := transcript(t, r.proxy, m, "k")
		want := transcript(t, r.workerCC, m, "k")
		if got != want || !strings.Contains(got, "FailedPrecondition") || !strings.Contains(got, "READ_ONLY_NODE") {
			t.Fatalf("%s through the proxy:\n%s\nstraight to the worker:\n%s", m, got, want)
		}
		if n := r.worker.count(m); n != 0 {
			t.Fatalf("the worker ran %d %s calls", n, m)
		}
	}
	_, err := testpb.NewGuardClient(r.proxy).Put(context.Background(), &testpb.Item{Key: "k"})
	if !role.IsReadOnly(err) {
		t.Fatalf("Put through the proxy: %v, want a read-only refusal", err)
	}
}

func TestProxyRefusesWhatItCannotPlace(t *testing.T) {
	// No descriptors: only the rules place methods.
	r := newProxyRig(t, ProxyDescriptors(nil), ProxyReadMethods("/carbon.test.v1.Guard/Get"), ProxyWriteMethods("/carbon.test.v1.Guard/Put"))
	c := testpb.NewGuardClient(r.proxy)
	ctx := context.Background()
	if _, err := c.Get(ctx, &testpb.Item{Key: "k"}); err != nil {
		t.Fatalf("Get (read rule): %v", err)
	}
	if _, err := c.Put(ctx, &testpb.Item{Key: "k"}); err != nil {
		t.Fatalf("Put (write rule): %v", err)
	}
	_, err := c.Search(ctx, &testpb.Item{Key: "k"})
	st := status.Convert(err)
	if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "/carbon.test.v1.Guard/Search") || !strings.Contains(fmt.Sprint(st.Details()), "UNPLACED_METHOD") {
		t.Fatalf("Search (no rule, no descriptor): %v %v", err, st.Details())
	}
	if n := r.worker.count("Search") + r.manager.count("Search"); n != 0 {
		t.Fatalf("an unplaced method reached an upstream %d times", n)
	}
	if r.worker.count("Get") != 1 || r.manager.count("Put") != 1 {
		t.Fatalf("rules misrouted: worker Get %d, manager Put %d", r.worker.count("Get"), r.manager.count("Put"))
	}

	// The write rule beats a descriptor that says NO_SIDE_EFFECTS.
	r = newProxyRig(t, ProxyWriteMethods("/carbon.test.v1.Guard/Get"))
	if _, err := testpb.NewGuardClient(r.proxy).Get(ctx, &testpb.Item{Key: "k"}); err != nil || r.manager.count("Get") != 1 {
		t.Fatalf("Get with a write rule: %v, manager saw %d", err, r.manager.count("Get"))
	}
}

func TestProxySameConnForwardsAnything(t *testing.T) {
	u := startUpstream(t, "only", nil)
	cc := dialBufconn(t, u.lis)
	proxy := serveProxy(t, NewProxy(cc, cc, ProxyDescriptors(nil)))
	for _, m := range []string{"Get", "Put", "List", "Upload", "Sync"} {
		if got := transcript(t, proxy, m, "k"); !strings.Contains(got, "status=OK") || !strings.Contains(got, "x-served-by=only") {
			t.Fatalf("%s:\n%s", m, got)
		}
	}
}

func TestProxyCancelAndDeadlineReachUpstream(t *testing.T) {
	r := newProxyRig(t)
	c := testpb.NewGuardClient(r.proxy)

	// The deadline travels: the upstream's is no later than the client's.
	dl := time.Now().Add(7 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	if _, err := c.Get(ctx, &testpb.Item{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	// grpc-timeout is relative and rounded: allow a little either way.
	if got := <-r.worker.deadline; got.After(dl.Add(100*time.Millisecond)) || got.Before(dl.Add(-2*time.Second)) {
		t.Fatalf("upstream deadline %v, client's %v", got, dl)
	}

	for _, kind := range []string{"unary", "bidi"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			before := r.worker.total()
			switch kind {
			case "unary":
				go func() { _, err := c.Get(ctx, &testpb.Item{Key: "block"}); done <- err }()
			case "bidi":
				s, err := c.Watch(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Send(&testpb.Item{Key: "block"}); err != nil {
					t.Fatal(err)
				}
				go func() { _, err := s.Recv(); done <- err }()
			}
			testutil.WaitFor(t, 5*time.Second, "the call to reach the upstream", func() bool { return r.worker.total() > before })
			cancel()
			select {
			case err := <-r.worker.ended:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("upstream context ended with %v, want Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream call was not cancelled")
			}
			if err := <-done; status.Code(err) != codes.Canceled {
				t.Fatalf("client: %v", err)
			}
		})
	}
}

// TestProxySlowReaderBoundsBuffering reads a 64 MiB server stream slowly
// through the proxy and checks, at every message read, that the upstream
// is never more than a few flow-control windows ahead of the reader. A
// proxy that buffered the stream would let the upstream send it all while
// the reader has read a few hundred KiB.
func TestProxySlowReaderBoundsBuffering(t *testing.T) {
	r := newProxyRig(t)
	if ahead := aheadOfSlowReader(t, r.worker, r.proxy); ahead > aheadBound {
		t.Fatalf("the upstream ran %d KiB ahead of a slow reader: the proxy buffers", ahead>>10)
	}
}

// aheadBound is how far the upstream may run ahead of the reader: the
// flow-control windows and send quotas of the two hops, a few hundred KiB
// with grpc-go's defaults, with room to spare.
const aheadBound = 4 << 20

// aheadOfSlowReader reads 200 messages of a 64 MiB stream slowly and
// returns how far, at most, the upstream's sends ran ahead of the reads.
func aheadOfSlowReader(t *testing.T, u *upstream, cc grpc.ClientConnInterface) (maxAhead int64) {
	t.Helper()
	const msgs = 4096 // 64 MiB
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := testpb.NewGuardClient(cc).List(ctx, &testpb.Item{Key: "flood", Value: fmt.Sprint(msgs)})
	if err != nil {
		t.Fatal(err)
	}
	var read int64
	for range 200 {
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		read += floodMsg
		// A slow reader, by design: the wait is the scenario, not a
		// condition the test waits for.
		time.Sleep(time.Millisecond)
		maxAhead = max(maxAhead, u.flooded.Load()-read)
	}
	t.Logf("upstream at most %d KiB ahead of the reader (stream %d KiB)", maxAhead>>10, msgs*floodMsg>>10)
	return maxAhead
}

// bufferingProxy forwards List like a proxy that reads its upstream as fast
// as it can into memory: the check above must catch it.
type bufferingProxy struct {
	testpb.UnimplementedGuardServer
	up testpb.GuardClient
}

func (b bufferingProxy) List(in *testpb.Item, s grpc.ServerStreamingServer[testpb.Item]) error {
	us, err := b.up.List(s.Context(), in)
	if err != nil {
		return err
	}
	ch := make(chan *testpb.Item, 1<<16)
	go func() {
		defer close(ch)
		for {
			m, err := us.Recv()
			if err != nil {
				return
			}
			ch <- m
		}
	}()
	for m := range ch {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func TestProxySlowReaderCheckCatchesBuffering(t *testing.T) {
	// The bound means something: behind a proxy that buffers, the upstream
	// gets past it while the reader has read one message.
	u := startUpstream(t, "worker", nil)
	cc := startBuffering(t, testpb.NewGuardClient(dialBufconn(t, u.lis)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := testpb.NewGuardClient(cc).List(ctx, &testpb.Item{Key: "flood", Value: "4096"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the upstream to run past the bound behind a buffering proxy", func() bool {
		return u.flooded.Load()-floodMsg > aheadBound
	})
}

func startBuffering(t *testing.T, up testpb.GuardClient) *grpc.ClientConn {
	srv := grpc.NewServer()
	testpb.RegisterGuardServer(srv, bufferingProxy{up: up})
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return dialBufconn(t, lis)
}

func TestProxyRetriesReadsOnceNeverWrites(t *testing.T) {
	ctx := context.Background()
	item := &testpb.Item{Key: "flaky"}
	r := newProxyRig(t)
	if _, err := testpb.NewGuardClient(r.proxy).Get(ctx, item); status.Code(err) != codes.Unavailable {
		t.Fatalf("Get without ProxyRetryReads: %v, want the upstream's Unavailable", err)
	}

	r = newProxyRig(t, ProxyRetryReads())
	c := testpb.NewGuardClient(r.proxy)
	if _, err := c.Get(ctx, item); err != nil || r.worker.count("Get") != 2 {
		t.Fatalf("Get with ProxyRetryReads: %v after %d attempts, want success after 2", err, r.worker.count("Get"))
	}
	r.worker.flaky.Store(0)
	s, err := c.List(ctx, item)
	if err == nil {
		_, err = s.Recv()
	}
	if err != nil || r.worker.count("List") != 2 {
		t.Fatalf("List: %v after %d attempts", err, r.worker.count("List"))
	}
	r.manager.flaky.Store(0)
	if _, err := c.Put(ctx, item); status.Code(err) != codes.Unavailable || r.manager.count("Put") != 1 {
		t.Fatalf("Put: %v after %d attempts, want Unavailable after 1 (writes are never retried)", err, r.manager.count("Put"))
	}
}

func TestProxyNilConnIsAClearError(t *testing.T) {
	u := startUpstream(t, "manager", nil)
	proxy := serveProxy(t, NewProxy(nil, dialBufconn(t, u.lis)))
	_, err := testpb.NewGuardClient(proxy).Get(context.Background(), &testpb.Item{Key: "k"})
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "nil connection") {
		t.Fatalf("Get with nil reads: %v", err)
	}
	if _, err := testpb.NewGuardClient(proxy).Put(context.Background(), &testpb.Item{Key: "k"}); err != nil {
		t.Fatalf("Put with writes set: %v", err)
	}
}
