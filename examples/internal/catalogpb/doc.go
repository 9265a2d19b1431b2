// Package catalogpb holds the generated code of catalog.proto, the demo
// service of the examples: an artifact catalog whose reads (ListArtifacts,
// GetArtifact) are annotated idempotency_level = NO_SIDE_EFFECTS and whose
// writes (DeployArtifact, UpdateArtifact, UndeployArtifact) are not, so the
// role Guard lets only the active manager write.
//
// The generated files are committed so builds never need protoc. To
// regenerate, install protoc (apt-get install protobuf-compiler) and the
// plugins:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//
// then run go generate ./examples/internal/catalogpb from the module root.
package catalogpb
