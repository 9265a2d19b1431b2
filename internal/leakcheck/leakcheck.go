package leakcheck

import "go.uber.org/goleak"

// Options returns the goleak options to use when checking for goroutine
// leaks after a Node's Leave or Close. memberlist's shutdown does not wait
// for a probe that is under way: that goroutine ends on its own within one
// probe timeout, so it is ignored.
func Options(extra ...goleak.Option) []goleak.Option {
	return append([]goleak.Option{
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	}, extra...)
}
