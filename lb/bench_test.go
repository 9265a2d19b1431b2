package lb

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/test/bufconn"

	"google.golang.org/grpc/balancer/leastrequest"
	_ "google.golang.org/grpc/balancer/roundrobin" // registers round_robin

	"github.com/carbonkit/carbon/internal/testpb"
)

// bufBackends are count in-memory gRPC servers.
type bufBackends struct {
	lis   map[string]*bufconn.Listener
	addrs []string
	srvs  []*grpc.Server
	bs    []*backend
	wg    sync.WaitGroup
}

func startBuf(tb testing.TB, count int) *bufBackends {
	bb := &bufBackends{lis: map[string]*bufconn.Listener{}}
	for i := range count {
		addr := fmt.Sprintf("buf-%d", i)
		l := bufconn.Listen(1 << 20)
		b := &backend{name: addr}
		s := grpc.NewServer()
		testpb.RegisterGuardServer(s, b)
		bb.lis[addr], bb.addrs, bb.srvs, bb.bs = l, append(bb.addrs, addr), append(bb.srvs, s), append(bb.bs, b)
		bb.wg.Add(1)
		go func() { defer bb.wg.Done(); _ = s.Serve(l) }()
	}
	tb.Cleanup(func() {
		for _, s := range bb.srvs {
			s.Stop()
		}
		bb.wg.Wait()
	})
	return bb
}

func (bb *bufBackends) dialer(ctx context.Context, addr string) (net.Conn, error) {
	return bb.lis[addr].DialContext(ctx)
}

// client dials the backends with grpc's round_robin (p < 0) or our policy p,
// through a manual resolver holding the same addresses either way.
func (bb *bufBackends) client(tb testing.TB, p Policy, opts ...Option) *grpc.ClientConn {
	r := manual.NewBuilderWithScheme("bench")
	sc := `{"loadBalancingConfig":[{"round_robin":{}}]}`
	var st resolver.State
	if p < 0 {
		for _, a := range bb.addrs {
			st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		}
	} else {
		registerBalancers()
		o, err := buildOptions("grpc", append([]Option{WithPolicy(p), WithLogger(testLogger())}, opts...))
		if err != nil {
			tb.Fatal(err)
		}
		s := newState(o, "bench", "grpc")
		ps := make([]peer, len(bb.addrs))
		for i, a := range bb.addrs {
			ps[i] = peer{name: a, addr: a, weight: 1, rank: i}
		}
		st = s.resolverState(ps)
		sc = serviceConfig(p)
	}
	r.InitialState(st)
	cc, err := grpc.NewClient("bench:///x", grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(sc),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(bb.dialer))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	// Connect to every backend before measuring.
	c := testpb.NewGuardClient(cc)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resetCounts(bb.bs)
		for range 4 * len(bb.addrs) {
			if _, err := c.Get(context.Background(), &testpb.Item{}, grpc.WaitForReady(true)); err != nil {
				tb.Fatal(err)
			}
		}
		all := true
		for _, b := range bb.bs {
			all = all && b.calls.Load() > 0
		}
		if all || p == LeastLoaded || time.Now().After(deadline) {
			break
		}
	}
	return cc
}

// BenchmarkUnary measures a unary RPC over bufconn backends with grpc's
// round_robin and with our policies. The interleaved variants make one call
// through round_robin and one through ours on the same backends in every
// iteration, in alternating order, and report ours/round_robin
// (x_round_robin): on a shared, loaded machine that ratio is far steadier
// than two separate runs.
func BenchmarkUnary(b *testing.B) {
	for _, n := range []int{3, 50} {
		bb := startBuf(b, n)
		for _, v := range []struct {
			name string
			p    Policy
		}{{"round_robin", -1}, {"carbon_rr", RoundRobin}, {"carbon_p2c", LeastLoaded}} {
			b.Run(fmt.Sprintf("%s/%d", v.name, n), func(b *testing.B) {
				c := testpb.NewGuardClient(bb.client(b, v.p))
				ctx := context.Background()
				in := &testpb.Item{Key: "k"}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Get(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		for _, v := range []struct {
			name string
			p    Policy
		}{{"interleaved_rr", RoundRobin}, {"interleaved_p2c", LeastLoaded}} {
			b.Run(fmt.Sprintf("%s/%d", v.name, n), func(b *testing.B) {
				base := testpb.NewGuardClient(bb.client(b, -1))
				ours := testpb.NewGuardClient(bb.client(b, v.p))
				ctx := context.Background()
				in := &testpb.Item{Key: "k"}
				var tb, to time.Duration
				call := func(c testpb.GuardClient) time.Duration {
					t0 := time.Now()
					if _, err := c.Get(ctx, in); err != nil {
						b.Fatal(err)
					}
					return time.Since(t0)
				}
				// Which goes first alternates, so that neither gains from
				// the caches the other warmed.
				odd := false
				for b.Loop() {
					if odd {
						to += call(ours)
						tb += call(base)
					} else {
						tb += call(base)
						to += call(ours)
					}
					odd = !odd
				}
				b.ReportMetric(float64(to)/float64(tb), "x_round_robin")
			})
		}
	}
}

// fakeCC is a balancer.ClientConn whose SubConns become ready at once.
type fakeCC struct {
	balancer.ClientConn
	mu     sync.Mutex
	state  balancer.State
	update chan struct{}
}

type fakeSC struct {
	balancer.SubConn
	listener func(balancer.SubConnState)
	once     sync.Once
}

func (f *fakeSC) Connect() {
	f.once.Do(func() {
		go func() {
			f.listener(balancer.SubConnState{ConnectivityState: connectivity.Connecting})
			f.listener(balancer.SubConnState{ConnectivityState: connectivity.Ready})
		}()
	})
}
func (f *fakeSC) Shutdown()                          {}
func (f *fakeSC) UpdateAddresses([]resolver.Address) {}
func (f *fakeSC) RegisterHealthListener(l func(balancer.SubConnState)) {
	go l(balancer.SubConnState{ConnectivityState: connectivity.Ready})
}

func (f *fakeCC) NewSubConn(_ []resolver.Address, o balancer.NewSubConnOptions) (balancer.SubConn, error) {
	return &fakeSC{listener: o.StateListener}, nil
}
func (f *fakeCC) RemoveSubConn(balancer.SubConn)                       {}
func (f *fakeCC) UpdateAddresses(balancer.SubConn, []resolver.Address) {}
func (f *fakeCC) ResolveNow(resolver.ResolveNowOptions)                {}
func (f *fakeCC) Target() string                                       { return "fake:///x" }
func (f *fakeCC) UpdateState(s balancer.State) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	select {
	case f.update <- struct{}{}:
	default:
	}
}

// fakePicker builds balancer name over n fake SubConns and returns its
// picker once every SubConn is ready.
func fakePicker(tb testing.TB, name string, st resolver.State, n int) balancer.Picker {
	cc := &fakeCC{update: make(chan struct{}, 1)}
	bal := balancer.Get(name).Build(cc, balancer.BuildOptions{})
	tb.Cleanup(bal.Close)
	var cfg serviceconfig.LoadBalancingConfig
	if p, ok := balancer.Get(name).(balancer.ConfigParser); ok {
		c, err := p.ParseConfig([]byte("{}"))
		if err != nil {
			tb.Fatal(err)
		}
		cfg = c
	}
	if err := bal.UpdateClientConnState(balancer.ClientConnState{ResolverState: st, BalancerConfig: cfg}); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cc.mu.Lock()
		s := cc.state
		cc.mu.Unlock()
		if s.ConnectivityState == connectivity.Ready && ready(s.Picker, n) {
			return s.Picker
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: picker not ready over %d SubConns", name, n)
		}
		select {
		case <-cc.update:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ready reports whether p picks among n SubConns: ours holds n children;
// picks of grpc's reach n SubConns. (Picks of least-loaded need not reach
// every member here: Done comes at once, so a measured member looks faster
// than one not measured yet.)
func ready(p balancer.Picker, n int) bool {
	if ours, ok := p.(*picker); ok {
		return len(ours.children) >= n && distinct(p, 1)
	}
	return distinct(p, n)
}

// distinct reports whether picks reach n SubConns.
func distinct(p balancer.Picker, n int) bool {
	seen := map[balancer.SubConn]bool{}
	for range 50 * n {
		r, err := p.Pick(balancer.PickInfo{Ctx: context.Background()})
		if err != nil {
			return false
		}
		if r.Done != nil {
			r.Done(balancer.DoneInfo{})
		}
		seen[r.SubConn] = true
	}
	return len(seen) >= n
}

// BenchmarkPick measures one pick and its Done, for grpc's round_robin and
// least_request pickers and for our policies over fake SubConns, with 3 and
// 50 members.
// ns/op, B/op and allocs/op are our pick's alone. Each policy then also
// times blocks of grpc round_robin picks and blocks of its own picks in
// turn and reports x_round_robin, ours ÷ round_robin over the same
// interleaved blocks, and rr_ns, round_robin's ns per pick in them: on a
// shared, loaded machine the ratio is far steadier than two runs apart.
func BenchmarkPick(b *testing.B) {
	registerBalancers()
	for _, n := range []int{3, 50} {
		addrs := make([]string, n)
		ps := make([]peer, n)
		var plain resolver.State
		for i := range n {
			addrs[i] = fmt.Sprintf("10.0.0.%d:1", i)
			ps[i] = peer{name: fmt.Sprintf("m%02d", i), addr: addrs[i], weight: 1, rank: i}
			plain.Endpoints = append(plain.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: addrs[i]}}})
		}
		base := fakePicker(b, "round_robin", plain, n)
		baseInfo := balancer.PickInfo{FullMethodName: "/carbon.test.v1.Guard/Get", Ctx: context.Background()}
		for _, v := range []struct {
			name string
			p    Policy
			grpc string // grpc-go's balancer when p < 0
		}{
			{"round_robin_grpc", -1, "round_robin"}, {"least_request_grpc", -1, leastrequest.Name},
			{"rr", RoundRobin, ""}, {"p2c", LeastLoaded, ""}, {"hash", ConsistentHash, ""}, {"active", ActiveFirst, ""}, {"nearest", Nearest, ""},
		} {
			b.Run(fmt.Sprintf("%s/%d", v.name, n), func(b *testing.B) {
				var pk balancer.Picker
				if v.p < 0 {
					pk = fakePicker(b, v.grpc, plain, n)
				} else {
					o, _ := buildOptions("grpc", []Option{WithPolicy(v.p), WithLogger(testLogger())})
					s := newState(o, "bench", "grpc")
					pk = fakePicker(b, v.p.balancerName(), s.resolverState(ps), map[Policy]int{ActiveFirst: 1, Nearest: 1}[v.p]+boolInt(v.p != ActiveFirst && v.p != Nearest)*n)
				}
				ctx := context.Background()
				if v.p == ConsistentHash {
					ctx = WithKey(ctx, "tenant-42")
				}
				info := balancer.PickInfo{FullMethodName: "/carbon.test.v1.Guard/Get", Ctx: ctx}
				b.ReportAllocs()
				for b.Loop() {
					pickDone(b, pk, info)
				}
				if v.grpc == "round_robin" {
					return
				}
				// Not timed by b: the ratio to round_robin, interleaved.
				const rounds, block = 64, 512
				var tb, to time.Duration
				for range rounds {
					t0 := time.Now()
					for range block {
						pickDone(b, base, baseInfo)
					}
					t1 := time.Now()
					for range block {
						pickDone(b, pk, info)
					}
					tb, to = tb+t1.Sub(t0), to+time.Since(t1)
				}
				b.ReportMetric(float64(to)/float64(tb), "x_round_robin")
				b.ReportMetric(float64(tb.Nanoseconds())/(rounds*block), "rr_ns")
				// Pick alone: for hash, one key per call of a block, as
				// calls in flight together carry different keys.
				infos := []balancer.PickInfo{info}
				if v.p == ConsistentHash {
					infos = make([]balancer.PickInfo, pickBlock)
					for j := range infos {
						infos[j] = balancer.PickInfo{FullMethodName: info.FullMethodName, Ctx: WithKey(context.Background(), fmt.Sprintf("tenant-%d", j))}
					}
				}
				b.ReportMetric(pickAlone(b, pk, infos), "pick_ns")
			})
		}
	}
}

var sinkSC balancer.SubConn

const pickBlock = 64

// pickAlone returns the ns of a pick without its Done (the measure grpc's
// round_robin, which has no Done, is quoted by): blocks of picks are timed,
// and their Dones are called after each block, untimed. Within a block the
// calls are all in flight, as under load. Pick j of a block uses
// infos[j%len(infos)].
func pickAlone(b *testing.B, pk balancer.Picker, infos []balancer.PickInfo) float64 {
	const rounds, block = 256, pickBlock
	var done [block]func(balancer.DoneInfo)
	var t time.Duration
	for range rounds {
		t0 := time.Now()
		for j := range block {
			r, err := pk.Pick(infos[j%len(infos)])
			if err != nil {
				b.Fatal(err)
			}
			done[j] = r.Done
		}
		t += time.Since(t0)
		for j, d := range done {
			if d != nil {
				d(balancer.DoneInfo{})
			}
			done[j] = nil
		}
	}
	return float64(t.Nanoseconds()) / (rounds * block)
}

// pickDone picks with pk and ends the call at once.
func pickDone(b *testing.B, pk balancer.Picker, info balancer.PickInfo) {
	r, err := pk.Pick(info)
	if err != nil {
		b.Fatal(err)
	}
	if r.Done != nil {
		r.Done(balancer.DoneInfo{})
	}
	sinkSC = r.SubConn
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkSlowBackend sends calls 8 at a time to 3 backends, one of them
// 10x slower, and reports the share of calls the slow one served.
func BenchmarkSlowBackend(b *testing.B) {
	const fast = 200 * time.Microsecond
	bb := startBuf(b, 3)
	for _, v := range []struct {
		name string
		p    Policy
	}{{"round_robin", -1}, {"carbon_rr", RoundRobin}, {"carbon_p2c", LeastLoaded}} {
		b.Run(v.name, func(b *testing.B) {
			for i, be := range bb.bs {
				be.delay.Store(int64(fast))
				if i == 0 {
					be.delay.Store(int64(10 * fast))
				}
			}
			defer func() {
				for _, be := range bb.bs {
					be.delay.Store(0)
				}
			}()
			c := testpb.NewGuardClient(bb.client(b, v.p))
			resetCounts(bb.bs)
			b.SetParallelism(4) // 8 callers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(context.Background(), &testpb.Item{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			var total int64
			for _, be := range bb.bs {
				total += be.calls.Load()
			}
			b.ReportMetric(float64(bb.bs[0].calls.Load())/float64(max(total, 1)), "slow_share")
		})
	}
}
