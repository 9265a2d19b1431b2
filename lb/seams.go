package lb

import "time"

// clockOrigin is the origin of the default clock (monotonic): set once when
// the package loads and only read afterwards, so sharing it couples no two
// balancers. It is not the cluster's election epoch. The seams a balancer
// uses (clock, random source, timers) come from its options, so that tests
// replace them per balancer (withSeams), never globally.
var clockOrigin = time.Now()

// monotonic is the default clock: nanoseconds since clockOrigin, by the
// monotonic clock, never 0 (0 means "no reading" in memberStats).
func monotonic() int64 { return int64(time.Since(clockOrigin)) + 1 }

// rand returns a random number for a pick: the test seam if one is set,
// else splitmix64 over the state's atomic counter (seeded at random). One
// atomic add and a direct call, not a closure: less than math/rand/v2's
// generator costs here, and picks need no better randomness.
func (s *state) rand() uint64 {
	if s.o.rand != nil {
		return s.o.rand()
	}
	return splitmix(s.rng.Add(golden))
}

// golden is splitmix64's increment.
const golden = 0x9e3779b97f4a7c15

// splitmix is the output function of splitmix64.
func splitmix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// afterFunc runs f once d has passed, in its own goroutine (no goroutine
// exists until then); stop cancels it.
func afterFunc(d time.Duration, f func()) (stop func() bool) { return time.AfterFunc(d, f).Stop }
