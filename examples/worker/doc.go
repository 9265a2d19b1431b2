// Command worker is a worker of the demo artifact catalog: a gRPC and HTTP
// server that joins a domain, serves reads, and refuses writes (the role
// Guard answers FailedPrecondition / 403). It never serves the management
// console.
//
//	go run ./examples/worker -domain demo -bind 127.0.0.1:7947 -seeds 127.0.0.1:7946
//
// Every flag can also be set by an environment variable: CARBON_DOMAIN,
// CARBON_SEEDS, ... (see -h). SIGINT or SIGTERM shut it down gracefully:
// drain (balancers stop sending it work), finish in-flight calls, leave.
package main
