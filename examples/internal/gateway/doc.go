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
// The gRPC side forwards the demo Catalog service; the HTTP side forwards
// everything except /_gateway/status, the gateway's own status page.
package gateway
