package cluster

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/role"
)

func TestRevisionIDOrderAndTag(t *testing.T) {
	a, b, c := RevisionID{1, 9}, RevisionID{2, 1}, RevisionID{2, 3}
	if a.Compare(b) >= 0 || b.Compare(c) >= 0 || c.Compare(a) <= 0 || c.Compare(c) != 0 {
		t.Fatalf("order of %v %v %v is wrong", a, b, c)
	}
	for _, r := range []RevisionID{{}, {1, 2}, {1 << 50, 1<<64 - 1}} {
		n := &Node{revision: &r}
		tg := map[string]string{}
		n.revisionTag(tg)
		got, ok := decodeRevision(tg["v"])
		if !ok || got != r {
			t.Errorf("tag round trip of %v: %v %v (tag %q)", r, got, ok, tg["v"])
		}
	}
	for _, bad := range []string{"", "x", "1-", "-1", "1-2-3", "zzzzzzzzzzzzzzzzz-1"} {
		if r, ok := decodeRevision(bad); ok {
			t.Errorf("decodeRevision(%q) = %v, want none", bad, r)
		}
	}
}

// TestStatusShowsRevisions reports revisions from real nodes and checks
// that the status page shows each and flags the one that lags the active
// manager's, but not the observer that runs no synchronizer.
func TestStatusShowsRevisions(t *testing.T) {
	named := func(c Config, name string, seed *Node) Config {
		c.NodeName = name
		if seed != nil {
			c.Seeds = []string{addrOf(seed)}
		}
		return c
	}
	mgr := start(t, named(local("rev", role.Manager), "mgr", nil))
	w1 := start(t, named(local("rev", role.Worker), "w1", mgr))
	w2 := start(t, named(local("rev", role.Worker), "w2", mgr))
	obs := start(t, named(Config{Domain: "rev", Observer: true, BindAddr: "127.0.0.1:0", Profile: ProfileLocal, Logger: testLogger()}, "obs", mgr))
	mgr.SetRevision(RevisionID{3, 7})
	w1.SetRevision(RevisionID{3, 7})
	w2.SetRevision(RevisionID{3, 6})
	waitFor(t, 10*time.Second, "the observer to see every revision", func() bool {
		v := obs.View()
		m, _ := v.Member("mgr")
		a, _ := v.Member("w1")
		b, _ := v.Member("w2")
		_, active := v.Active(SubDomainManager)
		return active && m.Revision == RevisionID{3, 7} && a.Revision == RevisionID{3, 7} && b.Revision == RevisionID{3, 6} && b.HasRevision
	})
	st := NewStatusReport(obs)
	raw, _ := json.Marshal(st)
	var doc struct {
		Domains []struct {
			ManagerRevision string `json:"manager_revision"`
			Lagging         int    `json:"lagging"`
			SubDomains      []struct {
				Members []struct {
					Name, Revision string
					Lags           bool
				}
			} `json:"sub_domains"`
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	d := doc.Domains[0]
	if d.ManagerRevision != "3-7" || d.Lagging != 1 {
		t.Fatalf("manager_revision %q, lagging %d; want 3-7 and 1\n%s", d.ManagerRevision, d.Lagging, raw)
	}
	want := map[string]struct {
		rev  string
		lags bool
	}{"mgr": {"3-7", false}, "w1": {"3-7", false}, "w2": {"3-6", true}, "obs": {"", false}}
	for _, s := range d.SubDomains {
		for _, m := range s.Members {
			if w := want[m.Name]; m.Revision != w.rev || m.Lags != w.lags {
				t.Errorf("%s: revision %q lags %v, want %q %v", m.Name, m.Revision, m.Lags, w.rev, w.lags)
			}
			delete(want, m.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("members missing from the report: %v", want)
	}
	rec := statusGet(t, NewStatusHandler(obs), "", "")
	if body := rec.Body.String(); !strings.Contains(body, "<code>3-6</code> <span class=\"pill lags\">lags</span>") || !strings.Contains(body, "1 lagging") {
		t.Errorf("the HTML page does not flag w2:\n%s", body)
	}

	// Catching up clears the flag.
	w2.SetRevision(RevisionID{3, 7})
	waitFor(t, 10*time.Second, "w2 to catch up", func() bool { return NewStatusReport(obs).Domains[0].Lagging == 0 })
}
