// Command worker is a worker of the demo artifact catalog: a gRPC and HTTP
// server that joins a domain, serves reads, and refuses writes (the role
// Guard answers FailedPrecondition / 403). It never serves the management
// console.
//
//	go run ./examples/worker -domain demo -bind 127.0.0.1:7947 -seeds 127.0.0.1:7946
//
// At start, and whenever it finds it missed a change, it catches up with
// the active manager's catalog (GET /api/catalog) before it serves: until
// then its reads answer 503 and /readyz says so, and it stays "starting" in
// the cluster, so balancers send it nothing. Every reply names the epoch
// and sequence number of the catalog it reflects (Carbon-Catalog-Epoch and
// Carbon-Catalog-Seq headers, carbon-catalog-* gRPC metadata).
//
// Every flag can also be set by an environment variable: CARBON_DOMAIN,
// CARBON_SEEDS, ... (see -h). SIGINT or SIGTERM shut it down gracefully:
// drain (balancers stop sending it work), finish in-flight calls, leave.
package main
