// Package depsyncpb holds the generated code of depsync.proto, the wire
// protocol of package cluster/depsync. Every method is annotated
// idempotency_level = NO_SIDE_EFFECTS, so role's Guard treats it as a read.
//
// The generated files are committed so builds never need protoc. To
// regenerate, install protoc (apt-get install protobuf-compiler) and the
// plugins:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//
// then run go generate ./internal/depsyncpb from the module root.
package depsyncpb
