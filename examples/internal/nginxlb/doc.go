// Package nginxlb runs a real Nginx as the balancer of the examples, its
// upstreams kept in sync with the domain by lb/nginx controllers: the
// alternative to the in-process lb gateway, behind the -nginx flag of
// examples/gateway and examples/patterns.
//
// Nginx gets a prefix directory of its own (configuration, pid, logs) and
// serves HTTP (proxy_pass) and gRPC (grpc_pass over h2c) on two listeners.
// A balancer fronting one sub-domain sends everything there; the managers'
// sub-domain gets the active manager as the primary server and the
// stand-bys as backups. A shared balancer sends HTTP GET, HEAD and OPTIONS
// and the gRPC methods the role Classifier calls reads to the workers, and
// the rest, and the management console, to the managers: Nginx knows no
// proto, so the read methods are listed in a map generated from the
// services linked into the program (default-deny: an unknown method goes to
// the managers).
package nginxlb
