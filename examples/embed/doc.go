// Command embed is the smallest server that embeds the SDK: the code of
// docs/GUIDE.md's "Embed the SDK in your own server", kept here so that it
// compiles and its test runs it. Run it as a worker of domain "demo":
//
//	go run ./examples/embed -seeds 127.0.0.1:7946
package main
