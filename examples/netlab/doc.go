// Command netlab runs the fault lab of package
// github.com/carbonkit/carbon/cluster/clustertest/netlab: a Carbon
// deployment pattern as real worker and manager processes, each in its own
// Linux network namespace, under a seeded random schedule of kill -9,
// SIGSTOP, partitions, one-way link cuts and isolated hosts, then checks
// the history against the cluster's promises and prints a summary.
//
// It needs root and the ip command. Replay a failing run with its seed:
//
//	sudo go run ./examples/netlab -pattern 3 -seed 1796650440090108976
//
// Run many seeds for a while (-soak) and print the recovery figures:
//
//	sudo go run ./examples/netlab -soak 10m -faults 10
//
// Measure recovery (the figures of docs/PERFORMANCE.md, "Fault lab:
// recovery"): kill -9 the active manager 20 times, restarting it each time,
// and partition and heal the hosts 20 times, each fault lasting -down
// (4 s), then print each run's summary and the p50/p99 of the time until
// writes are acknowledged again after a kill and until one view after a
// heal:
//
//	sudo go run ./examples/netlab -pattern 2 -recovery 20
//
// The exit status is 1 when a promise was broken, 2 on bad flags or a lab
// that could not run.
package main
