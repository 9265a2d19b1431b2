// Command patterns runs one of the three deployment patterns of the Carbon
// clustering guide on 127.0.0.1 with free ports, in one process, and takes it
// through a tour that prints whether each step held:
//
//	go run ./examples/patterns -pattern 3
//
// Reads through the worker balancer succeed and spread over the workers; a
// write sent to a worker is rejected; a write through the manager balancer
// succeeds; the deployed artifact reaches the workers; the console is on
// managers only; the active manager is killed and the stand-by takes over
// (patterns 2 and 3), with the time it took. Then it keeps running, with the
// status pages printed, until Ctrl-C (-hold=false exits at once).
//
// The exit status is 1 when a step did not hold.
//
// Flags:
//
//	-pattern 1|2|3   the pattern to run (default 3)
//	-nginx           balancers are real Nginx instances kept in sync by
//	                 lb/nginx (default: in-process lb gateways)
//	-nginx-bin PATH  the nginx binary (default: nginx in PATH, or /usr/sbin/nginx)
//	-hold            keep running after the tour until Ctrl-C (default true)
//	-log LEVEL       node logs to stderr: off, error, warn, info, debug (default off)
//	-otel EXPORTER   none or stdout: OpenTelemetry SDK for metrics and spans (default none)
package main
