// Package patterns starts the topology of one of the three deployment
// patterns of the Carbon clustering guide in one process, on 127.0.0.1 with
// free ports, and takes it through a tour whose every step says whether it
// held. examples/patterns runs it for people; its test runs it for CI.
//
//	pattern 1: one manager (not HA) + two workers; one balancer in front of
//	           the workers.
//	pattern 2: two managers (Active/Passive) in a domain of their own + two
//	           workers in another domain; one shared balancer holding an
//	           observer Node in each domain (reads to workers, writes to the
//	           active manager).
//	pattern 3: managers and workers as sub-domains of one domain; one
//	           dedicated balancer per sub-domain.
//
// Every node runs in this process (a process may hold several Nodes), so
// "killing the active manager" is closing its Node without leaving and
// stopping its servers: peers see a crash.
package patterns
