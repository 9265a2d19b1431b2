package lb

import (
	rand "math/rand/v2"
	"sync"
	"sync/atomic"
)

// state is what one Dial (or one Transport) shares between its resolver,
// its balancer, its pickers and its metrics: options, member stats and the
// set of members in service. It travels to the balancer as a resolver
// attribute.
type state struct {
	o   *options
	sub string
	// named: each address carries its member's name as ServerName, which
	// the trust credentials check the server's certificate against.
	named bool

	mu      sync.Mutex
	stats   map[string]*memberStats
	since   map[string]int64 // when each routable member was first seen
	lastNow atomic.Int64     // the newest clock reading (see now): a coarse clock for picks
	rng     atomic.Uint64    // state of rand
	primed  bool             // the first view was seen
	members atomic.Int32     // members in the last update

	total   atomic.Int64 // in-flight calls to all members, when bounded
	bounded bool         // the policy bounds load (hash, nearest)

	ejectMu sync.Mutex

	firstMu sync.Mutex
	first   string        // member the ActiveFirst picker tries first
	firstCh chan struct{} // closed when first changes

	transport string
}

func newState(o *options, sub, transport string) *state {
	s := &state{
		o: o, sub: sub, transport: transport,
		bounded: o.policy == ConsistentHash || o.policy == Nearest,
		stats:   map[string]*memberStats{},
		since:   map[string]int64{},
		firstCh: make(chan struct{}),
	}
	s.rng.Store(rand.Uint64())
	return s
}

// Equal lets grpc compare resolver attributes holding a *state.
func (s *state) Equal(o any) bool { x, ok := o.(*state); return ok && x == s }

// now reads the clock, and keeps the reading as the coarse clock picks may
// read for free (lastNow). The clock is read on builds, ejections and the
// calls that measure latency, never on the other picks: on a slow
// clocksource one reading costs as much as a whole pick.
func (s *state) now() int64 {
	t := s.o.clock()
	s.lastNow.Store(t)
	return t
}
