package trust

import (
	"strings"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	id, err := ParseIdentity("spiffe://d.test/mgt/manager/m1")
	if err != nil || id != mgr("m1") {
		t.Fatalf("ParseIdentity = %+v, %v", id, err)
	}
	sid, err := id.ID()
	if err != nil || sid.String() != "spiffe://d.test/mgt/manager/m1" {
		t.Fatalf("ID() = %v, %v", sid, err)
	}
	for uri, want := range map[string]string{
		"spiffe://d.test/mgt/manager":          "3 (/<sub-domain>/<role>/<node-name>)",
		"spiffe://d.test/mgt/manager/m1/extra": "has 4 path segments",
		"spiffe://d.test/mgt/admin/m1":         `unknown role "admin"`,
		"https://d.test/mgt/manager/m1":        "not a SPIFFE ID",
		"spiffe://D.TEST/mgt/manager/m1":       "not a SPIFFE ID",
	} {
		_, err := ParseIdentity(uri)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseIdentity(%q) = %v, want an error containing %q", uri, err, want)
		}
	}
	if _, err := (Identity{"d.test", "mgt", RoleManager, ""}).ID(); err == nil || !strings.Contains(err.Error(), "empty node name") {
		t.Errorf("empty name: %v", err)
	}
	if _, err := NewCA("Bad Domain"); err == nil || !strings.Contains(err.Error(), "not a SPIFFE trust domain") {
		t.Errorf("NewCA(bad): %v", err)
	}
}
