package depsync_test

import (
	"testing"

	"github.com/carbonkit/carbon/internal/depsyncpb"
	"github.com/carbonkit/carbon/role"
)

// TestMethodsAreReads: role's Guard classifies every DepSync method as a
// read, so read-only workers serve their peers.
func TestMethodsAreReads(t *testing.T) {
	c := role.NewClassifier()
	for _, m := range depsyncpb.DepSync_ServiceDesc.Methods {
		if full := "/" + depsyncpb.DepSync_ServiceDesc.ServiceName + "/" + m.MethodName; !c.IsRead(full) {
			t.Errorf("%s is classified as a write", full)
		}
	}
	for _, s := range depsyncpb.DepSync_ServiceDesc.Streams {
		if full := "/" + depsyncpb.DepSync_ServiceDesc.ServiceName + "/" + s.StreamName; !c.IsRead(full) {
			t.Errorf("%s is classified as a write", full)
		}
	}
	if c.IsRead("/" + depsyncpb.DepSync_ServiceDesc.ServiceName + "/Publish") {
		t.Error("an unknown method is classified as a read")
	}
}
