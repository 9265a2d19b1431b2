// Command manager is a manager of the demo artifact catalog: a gRPC and
// HTTP server that joins a domain, takes part in the election of its
// sub-domain (Active/Passive by default), accepts writes while it is the
// active manager, broadcasts them to the domain, and serves the management
// console at /console.
//
//	go run ./examples/manager -domain demo -bind 127.0.0.1:7946 -http 127.0.0.1:8080
//	go run ./examples/manager -domain demo -bind 127.0.0.1:7948 -seeds 127.0.0.1:7946
//
// A write is acknowledged (201) only while the manager holds its write
// lease, after every alive stand-by manager holds the change, and never by
// a manager that has just become active before it has caught up with its
// peers: otherwise it answers 503 with Retry-After. A manager whose -seeds
// it cannot reach stays a read-only stand-by (and not ready) unless it is
// started with -bootstrap: give it to the one manager that founds a domain.
// -history FILE records what it acknowledged, refused and applied, one JSON
// line per event (see examples/internal/server/history.go).
//
// Every flag can also be set by an environment variable: CARBON_DOMAIN,
// CARBON_SEEDS, ... (see -h). SIGINT or SIGTERM shut it down gracefully:
// an active manager hands over to a stand-by first, then drains and leaves.
package main
