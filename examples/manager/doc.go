// Command manager is a manager of the demo artifact catalog: a gRPC and
// HTTP server that joins a domain, takes part in the election of its
// sub-domain (Active/Passive by default), accepts writes while it is the
// active manager, broadcasts them to the domain, and serves the management
// console at /console.
//
//	go run ./examples/manager -domain demo -bind 127.0.0.1:7946 -http 127.0.0.1:8080
//
// Every flag can also be set by an environment variable: CARBON_DOMAIN,
// CARBON_SEEDS, ... (see -h). SIGINT or SIGTERM shut it down gracefully:
// an active manager hands over to a stand-by first, then drains and leaves.
package main
