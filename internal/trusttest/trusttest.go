package trusttest

import (
	"testing"

	"github.com/carbonkit/carbon/trust"
)

// CA returns a new in-memory CA for the trust domain, failing tb on error.
func CA(tb testing.TB, domain string) *trust.CA {
	tb.Helper()
	ca, err := trust.NewCA(domain)
	if err != nil {
		tb.Fatal(err)
	}
	return ca
}

// Source issues a certificate for id from ca and returns a Source that
// holds it and trusts ca, failing tb on error.
func Source(tb testing.TB, ca *trust.CA, id trust.Identity, opts ...trust.IssueOption) *trust.Source {
	tb.Helper()
	is, err := ca.Issue(id, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	src, err := trust.SourceOf(ca, is)
	if err != nil {
		tb.Fatal(err)
	}
	return src
}

// Member is Source for a member of ca's own domain: the sub-domain, the
// role (trust.RoleManager, trust.RoleWorker, trust.RoleObserver) and the
// node name.
func Member(tb testing.TB, ca *trust.CA, subDomain, role, name string) *trust.Source {
	tb.Helper()
	return Source(tb, ca, trust.Identity{Domain: ca.Domain(), SubDomain: subDomain, Role: role, Name: name})
}
