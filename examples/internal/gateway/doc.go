// Package gateway is the balancer of the examples: a process that joins a
// domain as an observer (it is never routed to nor elected) and forwards
// gRPC and HTTP calls into it with package lb.
//
// A gateway either fronts one sub-domain (pattern 1's and pattern 3's
// dedicated balancers: every call goes to it; the managers' balancer sends
// to the active manager first), or is shared (pattern 2's one balancer:
// reads go to the workers, writes to the active manager, told apart by the
// same classifier as the role Guard, and the management console to the
// managers whatever the method). For pattern 2 the two routes live in
// two domains, so the gateway holds two observer Nodes.
//
// The gRPC side forwards any service with lb.NewProxy: in a shared gateway
// a method is placed by its descriptor (the demo Catalog's are linked in)
// and a method nothing places is refused, never guessed. The HTTP side
// forwards everything except /_gateway/status, the gateway's own status
// page. Both put a deadline on the upstream's first answer and answer 503
// with Retry-After (gRPC Unavailable with a RetryInfo) whenever the upstream
// cannot answer, a stand-by manager's read-only refusal during a fail-over
// included.
package gateway
