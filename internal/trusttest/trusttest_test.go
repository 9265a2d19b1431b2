package trusttest

import (
	"testing"

	"github.com/carbonkit/carbon/trust"
)

// TestMember: a Source from Member names the identity asked for, in the
// CA's domain, and trusts that CA.
func TestMember(t *testing.T) {
	ca := CA(t, "tt.test")
	src := Member(t, ca, "mgt", trust.RoleManager, "m1")
	id := src.Identity()
	want := trust.Identity{Domain: "tt.test", SubDomain: "mgt", Role: trust.RoleManager, Name: "m1"}
	if id != want {
		t.Errorf("identity %+v, want %+v", id, want)
	}
	if err := src.Leaf().CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Errorf("the certificate is not the CA's: %v", err)
	}
}

// TestCAFailsTheTest: a bad domain fails the test, naming the error.
func TestCAFailsTheTest(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		CA(r, "not a domain")
	}()
	if !r.failed {
		t.Error("CA of a bad domain did not fail the test")
	}
}

// recorder records Fatal instead of ending the test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.failed = true
	panic("fatal")
}
