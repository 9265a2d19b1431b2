package carboncli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/leakcheck"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/lb"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// domain is a little live domain on 127.0.0.1: a manager and two workers
// whose "http" endpoints are real HTTP servers naming the worker.
type domain struct {
	name    string
	key     string
	mgr     *cluster.Node
	workers []*cluster.Node
	cli     atomic.Int32
}

func startDomain(t *testing.T, name string) *domain {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 16)
	d := &domain{name: name, key: base64.StdEncoding.EncodeToString(key)}
	join := func(cfg cluster.Config) *cluster.Node {
		cfg.Domain, cfg.BindAddr, cfg.Profile, cfg.Key, cfg.Logger = name, "127.0.0.1:0", cluster.ProfileLocal, key, quiet
		if d.mgr != nil {
			cfg.Seeds = []string{d.mgr.Self().Addr}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := cluster.Join(ctx, cfg)
		if err != nil {
			t.Fatalf("join %s: %v", cfg.NodeName, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	d.mgr = join(cluster.Config{Role: role.Manager, NodeName: "mgr"})
	for i := 1; i <= 2; i++ {
		wname := "w" + strconv.Itoa(i)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, wname) }))
		t.Cleanup(srv.Close)
		d.workers = append(d.workers, join(cluster.Config{Role: role.Worker, NodeName: wname,
			Endpoints: map[string]string{"http": strings.TrimPrefix(srv.URL, "http://")}}))
	}
	d.waitAlive(t, 3)
	return d
}

// waitAlive waits until every live node sees want alive members besides
// observers.
func (d *domain) waitAlive(t *testing.T, want int) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d alive members and an active manager", want), func() bool {
		for _, n := range append([]*cluster.Node{d.mgr}, d.workers...) {
			select {
			case <-n.Done():
				continue
			default:
			}
			if _, ok := n.Active(cluster.SubDomainManager); !ok || len(n.View().Alive("")) != want {
				return false
			}
		}
		return true
	})
}

// run runs the tool against the domain with args; the domain's flags come
// first, so args may override them.
func (d *domain) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	name := fmt.Sprintf("cli-%d", d.cli.Add(1))
	all := append([]string{"-domain", d.name, "-seeds", d.mgr.Self().Addr, "-profile", "local", "-key", d.key, "-name", name}, args...)
	var out, errb bytes.Buffer
	code := Main(context.Background(), all, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMembersJSONMatchesViews(t *testing.T) {
	d := startDomain(t, "cli-members")
	code, out, errs := d.run(t, "members", "-json")
	if code != ExitOK {
		t.Fatalf("members -json: exit %d, stderr %s", code, errs)
	}
	var got []cluster.MemberStatus
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("members -json is not a JSON array of members: %v\n%s", err, out)
	}
	for _, n := range append([]*cluster.Node{d.mgr}, d.workers...) {
		var want []string
		for _, m := range n.Members() {
			if !m.Observer {
				want = append(want, fmt.Sprintf("%s/%s/%s/%s/%s", m.Name, m.Role, m.SubDomain, m.Status, m.State))
			}
		}
		var have []string
		for _, m := range got {
			have = append(have, fmt.Sprintf("%s/%s/%s/%s/%s", m.Name, m.Role, m.SubDomain, m.Status, m.State))
		}
		if strings.Join(have, " ") != strings.Join(want, " ") {
			t.Errorf("members -json says %v, %s's view %v", have, n.Name(), want)
		}
	}
	for _, m := range got {
		if m.Active != (m.Name == "mgr") {
			t.Errorf("%s: active %v", m.Name, m.Active)
		}
	}

	code, out, _ = d.run(t, "members")
	if code != ExitOK || !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "active") || strings.Count(out, "\n") != 4 {
		t.Errorf("members table (exit %d):\n%s", code, out)
	}
}

func TestActiveAndStatus(t *testing.T) {
	d := startDomain(t, "cli-active")
	code, out, errs := d.run(t, "active", "-json")
	if code != ExitOK {
		t.Fatalf("active -json: exit %d: %s", code, errs)
	}
	var act []ActiveJSON
	if err := json.Unmarshal([]byte(out), &act); err != nil || len(act) != 1 {
		t.Fatalf("active -json: %v\n%s", err, out)
	}
	if a := act[0]; a.Name != "mgr" || a.SubDomain != "mgt" || a.Epoch == 0 || a.Epoch != d.mgr.View().Epoch("mgt") {
		t.Errorf("active -json = %+v, want mgr of mgt at epoch %d", a, d.mgr.View().Epoch("mgt"))
	}
	if code, _, errs := d.run(t, "active", "worker"); code != ExitNotFound || !strings.Contains(errs, "no active manager") {
		t.Errorf("active worker: exit %d, stderr %q; want %d and a clear error", code, errs, ExitNotFound)
	}
	code, out, _ = d.run(t, "status")
	if code != ExitOK || !strings.Contains(out, "sub-domain mgt: active manager mgr, epoch") || !strings.Contains(out, "w2") {
		t.Errorf("status (exit %d):\n%s", code, out)
	}
	code, out, _ = d.run(t, "status", "-json")
	var st cluster.StatusReport
	if err := json.Unmarshal([]byte(out), &st); code != ExitOK || err != nil || len(st.Domains) != 1 || st.Domains[0].Domain != "cli-active" {
		t.Errorf("status -json (exit %d, %v):\n%s", code, err, out)
	}
}

// TestDrainAndLeave: the target refuses the tool without -manager and
// obeys it with; a drained worker gets no more calls from lb.
func TestDrainAndLeave(t *testing.T) {
	d := startDomain(t, "cli-drain")
	tr := lb.NewTransport(d.mgr, cluster.SubDomainWorker, lb.WithPolicy(lb.RoundRobin))
	defer tr.(*lb.Transport).Close()
	client := &http.Client{Transport: tr}
	served := func() map[string]int {
		got := map[string]int{}
		for range 20 {
			resp, err := client.Get("http://worker/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(b)]++
		}
		return got
	}
	if got := served(); got["w1"] == 0 || got["w2"] == 0 {
		t.Fatalf("before the drain lb spreads over both workers, got %v", got)
	}

	code, _, errs := d.run(t, "drain", "w1")
	if code != ExitRefused || !strings.Contains(errs, "refuses to drain") || !strings.Contains(errs, "-manager") {
		t.Errorf("drain without -manager: exit %d, stderr %q; want %d, the target's refusal and a hint", code, errs, ExitRefused)
	}
	if st := d.workers[0].Self().State; st != cluster.Serving {
		t.Fatalf("w1 is %v after a refused drain", st)
	}
	code, out, errs := d.run(t, "-manager", "drain", "w1", "-json")
	if code != ExitOK {
		t.Fatalf("drain -manager: exit %d: %s", code, errs)
	}
	var res ControlJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.State != "draining" || res.Member != "w1" {
		t.Errorf("drain -json: %+v (%v)", res, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the manager sees w1 draining", func() bool {
		m, _ := d.mgr.View().Member("w1")
		return m.State == cluster.Draining
	})
	if got := served(); got["w1"] != 0 || got["w2"] != 20 {
		t.Errorf("after the drain lb still picks w1: %v", got)
	}

	code, _, errs = d.run(t, "leave", "w2")
	if code != ExitRefused || !strings.Contains(errs, "refuses to leave") {
		t.Errorf("leave from a non-manager: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := d.run(t, "-manager", "leave", "nobody"); code != ExitNotFound || !strings.Contains(errs, "nobody") {
		t.Errorf("leave nobody: exit %d, stderr %q", code, errs)
	}
	if code, out, errs := d.run(t, "-manager", "leave", "w2"); code != ExitOK || !strings.Contains(out, "w2: left") {
		t.Fatalf("leave -manager: exit %d, out %q, stderr %s", code, out, errs)
	}
	select {
	case <-d.workers[1].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("w2 did not leave")
	}
}

// TestKeysRotate rotates the gossip key across the live domain with the
// tool, then checks that the old key no longer joins.
func TestKeysRotate(t *testing.T) {
	d := startDomain(t, "cli-keys")
	list := func(key string) map[string]int {
		t.Helper()
		code, out, errs := d.run(t, "-key", key, "keys", "list", "-json")
		if code != ExitOK {
			t.Fatalf("keys list: exit %d: %s", code, errs)
		}
		var k KeysJSON
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			t.Fatalf("keys list -json: %v\n%s", err, out)
		}
		return k.Keys
	}
	// Every member answers, the tool's own observer too.
	if ks := list(d.key); len(ks) != 1 || ks[d.key] != 4 {
		t.Fatalf("keys before rotation: %v, want %s on 4 members", ks, d.key)
	}
	nk := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	for _, step := range [][]string{{"install", nk}, {"use", nk}, {"remove", d.key}} {
		key := d.key
		if step[0] == "remove" {
			key = nk // the domain encrypts with the new key by now
		}
		if code, _, errs := d.run(t, "-key", key, "keys", step[0], step[1]); code != ExitOK {
			t.Fatalf("keys %s: exit %d: %s", step[0], code, errs)
		}
	}
	if ks := list(nk); len(ks) != 1 || ks[nk] != 4 {
		t.Fatalf("keys after rotation: %v, want only the new key on 4 members", ks)
	}
	code, _, errs := d.run(t, "-key", d.key, "-timeout", "2s", "members")
	if code != ExitUnreachable || !strings.Contains(errs, "key") {
		t.Errorf("members with the removed key: exit %d, stderr %q; want %d naming the key", code, errs, ExitUnreachable)
	}
}

func TestRevisions(t *testing.T) {
	d := startDomain(t, "cli-rev")
	d.mgr.SetRevision(cluster.RevisionID{Epoch: 5, Seq: 2})
	d.workers[0].SetRevision(cluster.RevisionID{Epoch: 5, Seq: 2})
	d.workers[1].SetRevision(cluster.RevisionID{Epoch: 5, Seq: 1})
	testutil.WaitFor(t, 10*time.Second, "the manager sees every revision", func() bool {
		m, _ := d.mgr.View().Member("w2")
		return m.HasRevision
	})
	code, out, _ := d.run(t, "revisions", "-json")
	var r RevisionsJSON
	if err := json.Unmarshal([]byte(out), &r); code != ExitLagging || err != nil {
		t.Fatalf("revisions -json: exit %d (want %d), %v\n%s", code, ExitLagging, err, out)
	}
	if r.ManagerRevision != "5-2" || r.Lagging != 1 || len(r.Members) != 3 {
		t.Fatalf("revisions -json = %+v", r)
	}
	for _, m := range r.Members {
		if m.Lags != (m.Name == "w2") {
			t.Errorf("%s: lags %v (revision %s)", m.Name, m.Lags, m.Revision)
		}
	}
	d.workers[1].SetRevision(cluster.RevisionID{Epoch: 5, Seq: 2})
	testutil.WaitFor(t, 10*time.Second, "the manager sees w2 catch up", func() bool {
		m, _ := d.mgr.View().Member("w2")
		return m.Revision.Seq == 2
	})
	if code, out, errs := d.run(t, "revisions"); code != ExitOK || !strings.Contains(out, "manager's revision: 5-2") {
		t.Errorf("revisions after catching up: exit %d\n%s%s", code, out, errs)
	}
}

func TestWatch(t *testing.T) {
	d := startDomain(t, "cli-watch")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errs testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"-domain", d.name, "-seeds", d.mgr.Self().Addr, "-profile", "local", "-key", d.key, "-name", "watcher", "watch", "-json"}, &out, &errs)
	}()
	changes := func() []Change {
		var cs []Change
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var c Change
			if json.Unmarshal([]byte(line), &c) == nil {
				cs = append(cs, c)
			}
		}
		return cs
	}
	has := func(kind, member, to string) bool {
		for _, c := range changes() {
			if c.Kind == kind && c.Member == member && (to == "" || c.To == to) {
				return true
			}
		}
		return false
	}
	testutil.WaitFor(t, 10*time.Second, "watch to show the present members and the active manager", func() bool {
		return has("present", "mgr", "") && has("present", "w1", "") && has("present", "w2", "") && has("active", "mgr", "")
	})
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	if err := d.workers[0].Drain(dctx); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "watch to show w1 draining", func() bool { return has("state", "w1", "draining") })
	d.workers[1].Close()
	testutil.WaitFor(t, 10*time.Second, "watch to show w2 failed", func() bool { return has("status", "w2", "failed") })
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("watch ended with exit %d: %s", code, errs.String())
	}
}

func TestBadInput(t *testing.T) {
	// A port nothing listens on, for an unreachable seed.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.LocalAddr().String()
	l.Close()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-nope", "members"}, ExitUsage, "flag provided but not defined: -nope"},
		{[]string{"-domain", "x", "-seeds", dead}, ExitUsage, "no command"},
		{[]string{"-domain", "x", "-seeds", dead, "frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{[]string{"-domain", "x", "-seeds", dead, "drain"}, ExitUsage, "usage: carbon drain NODE"},
		{[]string{"-domain", "x", "-seeds", dead, "keys", "install", "bad!"}, ExitUsage, "not base64"},
		{[]string{"-domain", "x", "-seeds", dead, "keys", "install", "AAAA"}, ExitUsage, "3 bytes"},
		{[]string{"-domain", "x", "-seeds", dead, "-timeout", "soon", "members"}, ExitUsage, "-timeout"},
		{[]string{"-seeds", dead, "members"}, ExitUsage, "-domain is required"},
		{[]string{"-domain", "x", "members"}, ExitUsage, "-seeds is required"},
		{[]string{"-domain", "x", "-seeds", dead, "-profile", "warp", "members"}, ExitUsage, "unknown timing profile"},
		{[]string{"-domain", "x", "-seeds", dead, "-profile", "local", "-timeout", "1s", "members"}, ExitUnreachable, "did not answer"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("carbon %v: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"-h"}, &out, &errb); code != ExitOK || !strings.Contains(errb.String(), "exit codes") {
		t.Errorf("-h: exit %d, %q", code, errb.String())
	}
}
