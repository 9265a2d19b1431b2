// Package testpb holds the generated code of guardtest.proto, a test
// service for package role's Guard: one read (annotated
// idempotency_level = NO_SIDE_EFFECTS) and one write of every stream kind.
//
// The generated files are committed so tests never need protoc. To
// regenerate, install protoc (apt-get install protobuf-compiler) and the
// plugins:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//
// then run go generate ./internal/testpb from the module root.
package testpb
