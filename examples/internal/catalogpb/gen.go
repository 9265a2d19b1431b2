package catalogpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative catalog.proto

// Reading a method's idempotency_level (role's Classifier does) needs the
// descriptor package linked in; protobuf panics otherwise.
import _ "google.golang.org/protobuf/types/descriptorpb"
