package lb

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"
)

// registerOnce registers our balancer builders in grpc's registry the first
// time a balancer is needed. grpc-go only finds balancers there; ours are
// stateless (every per-Dial thing comes in the resolver's attributes), so
// one registration serves every Node of the process.
var registerOnce sync.Once

func registerBalancers() {
	registerOnce.Do(func() {
		for p := range len(policyNames) {
			if balancer.Get(Policy(p).balancerName()) == nil {
				balancer.Register(builder{policy: Policy(p)})
			}
		}
	})
}

type builder struct{ policy Policy }

type lbConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`
}

func (b builder) Name() string { return b.policy.balancerName() }

// ParseConfig accepts an empty object: the balancer's settings are the
// Dial's options, which travel with the resolver's updates.
func (b builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("lb: %s config: %w", b.Name(), err)
	}
	if len(m) != 0 {
		return nil, fmt.Errorf("lb: %s config takes no fields (use lb options)", b.Name())
	}
	return &lbConfig{}, nil
}

func (b builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	lb := &lbBalancer{ClientConn: cc, policy: b.policy}
	lb.child = endpointsharding.NewBalancer(lb, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	return lb
}

// lbBalancer is endpointsharding over pick_first children, one per member
// (so connections and their health are grpc-go's), with our picker over the
// ready ones.
type lbBalancer struct {
	balancer.ClientConn // intercepts UpdateState from endpointsharding
	child               balancer.Balancer
	policy              Policy

	mu       sync.Mutex
	s        *state
	empty    bool
	closed   bool
	slow     *set        // the current picker's set while a member is slowly starting
	slowStop func() bool // cancels the timer that raises slow starts' shares
}

func (b *lbBalancer) UpdateClientConnState(ccs balancer.ClientConnState) error {
	s, _ := ccs.ResolverState.Attributes.Value(stateKey{}).(*state)
	if s == nil {
		return fmt.Errorf("lb: balancer %s used without the lb resolver: %w", b.policy.balancerName(), balancer.ErrBadResolverState)
	}
	b.mu.Lock()
	b.s = s
	b.empty = len(ccs.ResolverState.Endpoints) == 0
	b.mu.Unlock()
	err := b.child.UpdateClientConnState(balancer.ClientConnState{
		ResolverState: pickfirst.EnableHealthListener(ccs.ResolverState),
	})
	if b.empty {
		// Say why, rather than endpointsharding's "no children".
		b.ClientConn.UpdateState(balancer.State{
			ConnectivityState: connectivity.TransientFailure,
			// Not a status error: grpc fails the call with Unavailable, or
			// waits for members if it is wait-for-ready.
			Picker: base.NewErrPicker(fmt.Errorf("%w of sub-domain %q with endpoint %q",
				ErrNoMembers, s.sub, s.o.endpoint)),
		})
		return nil
	}
	return err
}

func (b *lbBalancer) ResolverError(err error) { b.child.ResolverError(err) }

func (b *lbBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *lbBalancer) ExitIdle() { b.child.ExitIdle() }

func (b *lbBalancer) Close() {
	b.stopSlow()
	b.child.Close()
}

// stopSlow stops the slow-start timer for good.
func (b *lbBalancer) stopSlow() {
	b.mu.Lock()
	b.closed = true
	b.setSlow(nil)
	b.mu.Unlock()
}

// setSlow makes x the set whose slow starts a timer moves on, stopping the
// timer of the previous one. The caller holds b.mu.
func (b *lbBalancer) setSlow(x *set) {
	if b.slowStop != nil {
		b.slowStop()
		b.slowStop = nil
	}
	b.slow = nil
	if x == nil || b.closed {
		return
	}
	if next := x.slowNext.Load(); next != 0 {
		b.slow = x
		b.armSlow(x, next)
	}
}

// armSlow schedules the refresh of x's slow-start shares at clock next, so
// that picks read precomputed shares and never the clock. The caller holds
// b.mu.
func (b *lbBalancer) armSlow(x *set, next int64) {
	d := time.Duration(max(next-x.s.now(), 0))
	b.slowStop = x.s.o.afterFunc(d, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.closed || b.slow != x {
			return
		}
		n := x.refreshSlow(x.s.now())
		x.slowNext.Store(n)
		b.slowStop = nil
		if n == 0 {
			b.slow = nil
			return
		}
		b.armSlow(x, n)
	})
}

// UpdateState builds our picker over the ready children.
func (b *lbBalancer) UpdateState(st balancer.State) {
	b.mu.Lock()
	s, empty := b.s, b.empty
	b.mu.Unlock()
	if s == nil || empty {
		if !empty {
			b.ClientConn.UpdateState(st)
		}
		return
	}
	children := endpointsharding.ChildStatesFromPicker(st.Picker)
	var (
		ps      []peer
		pickers []balancer.Picker
		waitAct bool
	)
	for _, c := range children {
		m, ok := memberOf(c.Endpoint)
		if !ok {
			continue
		}
		switch c.State.ConnectivityState {
		case connectivity.Ready:
			ps = append(ps, peer{name: m.name, weight: m.weight, rank: m.rank, since: m.since})
			pickers = append(pickers, c.State.Picker)
		case connectivity.Idle, connectivity.Connecting:
			// Writes wait for the active manager while it connects rather
			// than go to a stand-by that would refuse them.
			if b.policy == ActiveFirst && m.rank == 0 {
				waitAct = true
			}
		}
	}
	if waitAct {
		b.ClientConn.UpdateState(balancer.State{
			ConnectivityState: connectivity.Connecting,
			Picker:            base.NewErrPicker(balancer.ErrNoSubConnAvailable),
		})
		return
	}
	if len(ps) == 0 {
		b.ClientConn.UpdateState(st)
		return
	}
	// Sort by name so that sets, rings and schedules are deterministic.
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	sortByName(idx, ps)
	sps := make([]peer, len(ps))
	spk := make([]balancer.Picker, len(ps))
	stats := make([]*memberStats, len(ps))
	for j, i := range idx {
		sps[j], spk[j] = ps[i], pickers[i]
		stats[j] = s.statsFor(ps[i].name)
	}
	x := s.newSet(b.policy, sps, stats)
	if b.policy == ActiveFirst {
		s.setFirst(sps[x.order[0]].name)
	}
	b.mu.Lock()
	b.setSlow(x)
	b.mu.Unlock()
	b.ClientConn.UpdateState(balancer.State{
		ConnectivityState: connectivity.Ready,
		// Only the scores of p2c (LeastLoaded, and ConsistentHash without
		// a key) use latency.
		Picker: &picker{x: x, children: spk, latency: b.policy == LeastLoaded || b.policy == ConsistentHash},
	})
}

func sortByName(idx []int, ps []peer) {
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && ps[idx[j]].name < ps[idx[j-1]].name; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
}

// picker picks a member with the set's policy and then the connection of
// that member's pick_first child. It never blocks, reads no clock but on
// the calls that measure latency, and allocates only when the child returns
// a Done of its own (pick_first returns none).
type picker struct {
	x        *set
	children []balancer.Picker
	latency  bool
}

// A call measures its member's latency if no other call to the member is
// measuring already (trySample) and: the member's latency is unknown, or its
// last sample is older than sampleInterval by the coarse clock (the newest
// clock reading of the state), or the call is the member's latencySample-th
// since. Measuring reads the clock twice (costly on a slow clocksource),
// so at high call rates few calls measure (about one per member per
// sampleInterval, and 1 in latencySample) while at low rates most do: the
// EWMA (weight 1/8) follows in time, not in calls. The count also keeps the
// coarse clock moving when calls are shorter than sampleInterval.
const (
	latencySample  = 64
	sampleInterval = int64(time.Millisecond)
)

type noteCtx struct{}

// pickNote records where an ActiveFirst pick went, for the Router's retry.
type pickNote struct {
	s      *state
	member string
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	x := p.x
	var (
		key    uint64
		hasKey bool
	)
	if x.policy == ConsistentHash {
		key, hasKey = keyFrom(info.Ctx)
	}
	i := x.pick(key, hasKey, -1)
	if i < 0 {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	res, err := p.children[i].Pick(info)
	if err != nil {
		return res, err
	}
	s, st := x.s, x.e[i].st
	if x.policy == ActiveFirst && info.Ctx != nil {
		if n, ok := info.Ctx.Value(noteCtx{}).(*pickNote); ok {
			n.s, n.member = s, st.name
		}
	}
	// See sampleInterval: no clock read and no random number to decide. A
	// keyed ConsistentHash pick does not use latency, so it measures none.
	n := s.begin(st)
	done := st.doneFn
	if p.latency && !hasKey && (n%latencySample == 0 || st.ewma.Load() == 0 ||
		s.lastNow.Load()-st.lastObs.Load() > sampleInterval) && s.trySample(st) {
		done = st.sampleFn
	}
	if child := res.Done; child != nil {
		res.Done = func(di balancer.DoneInfo) {
			done(di)
			child(di)
		}
	} else {
		res.Done = done
	}
	return res, nil
}

// grpcFailure reports whether a call's error counts towards ejection.
func (s *state) grpcFailure(err error) bool {
	if err == nil {
		return false
	}
	c := status.Code(err)
	for _, f := range s.o.ejection.Codes {
		if c == f {
			return true
		}
	}
	return false
}
