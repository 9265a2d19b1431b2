package trust

import (
	"testing"
)

func mustCA(t testing.TB, domain string) *CA {
	t.Helper()
	ca, err := NewCA(domain)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustSource(t testing.TB, ca *CA, id Identity, opts ...IssueOption) *Source {
	t.Helper()
	is, err := ca.Issue(id, opts...)
	if err != nil {
		t.Fatal(err)
	}
	src, err := SourceOf(ca, is)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func mgr(name string) Identity { return Identity{"d.test", "mgt", RoleManager, name} }
func wrk(name string) Identity { return Identity{"d.test", "worker", RoleWorker, name} }
