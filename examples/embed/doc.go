// Command embed is the smallest server that embeds the SDK: the README's
// embedding example, kept here so that it compiles, its test runs it, and a
// test checks that the README shows it as written. It joins domain "demo" as
// a worker, prints the members it sees, and serves gRPC (the health service)
// and HTTP (/status, /console) behind the read-only Guard:
//
//	go run ./examples/embed                        # a new domain
//	go run ./examples/embed -seeds 127.0.0.1:7946  # join one
package main
