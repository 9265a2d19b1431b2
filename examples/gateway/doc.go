// Command gateway is a balancer in front of a domain: it joins as an
// observer (never routed to, never elected) and forwards gRPC (any
// service, through lb.NewProxy) and HTTP into the domain with package lb.
//
// With -mode sub-domain (the default) it fronts one sub-domain: pattern 1's
// balancer and each of pattern 3's two balancers. In front of the managers'
// sub-domain it sends to the active manager first.
//
//	go run ./examples/gateway -domain demo -seeds 127.0.0.1:7946 -sub-domain worker -http 127.0.0.1:8081
//
// With -mode shared it is pattern 2's one balancer: reads go to the workers,
// writes (and the management console) to the active manager. When the
// managers are a domain of their own, -writes-domain and -writes-seeds name
// it and the gateway holds a second observer Node there.
//
//	go run ./examples/gateway -mode shared -domain workers -seeds 127.0.0.1:7950 \
//	    -writes-domain managers -writes-seeds 127.0.0.1:7946
//
// With -nginx the balancer is a real Nginx, which the gateway starts and
// whose upstreams lb/nginx keeps in sync; the gateway process then only
// holds the observer Nodes and the controllers.
//
// Every upstream call has a deadline on its first answer (-upstream-timeout,
// default 10s). When the upstream cannot answer (no routable member, no
// answer in time, a failed connection, or only stand-by managers where a
// write needs the active one) the client gets 503 with Retry-After, or gRPC
// Unavailable with a RetryInfo, and can retry shortly. Reads are retried
// once on another member after a failed connection (gRPC: after
// Unavailable); writes never are.
//
// Every flag can also be set by an environment variable (CARBON_ + the flag
// name, see -h). It serves its own status page at /_gateway/status and its
// Prometheus metrics at /metrics (in-process mode; those two paths are not
// forwarded; with -nginx, /metrics is on the -metrics address) and stops
// on SIGINT or SIGTERM.
package main
