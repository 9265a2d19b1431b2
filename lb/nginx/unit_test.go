package nginx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

func TestNewRejectsBadConfig(t *testing.T) {
	obs := observer(t, nil)
	w := &countingWriter{}
	ok := UpstreamSpec{Name: "workers", SubDomain: "worker"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no writer", Config{Upstreams: []UpstreamSpec{ok}}, "Config.Writer"},
		{"no upstreams", Config{Writer: w}, "Config.Upstreams is empty"},
		{"bad name", Config{Writer: w, Upstreams: []UpstreamSpec{{Name: "a b;", SubDomain: "worker"}}}, "Config.Upstreams[0].Name"},
		{"duplicate", Config{Writer: w, Upstreams: []UpstreamSpec{ok, ok}}, "Config.Upstreams[1].Name \"workers\" is used twice"},
		{"no sub-domain", Config{Writer: w, Upstreams: []UpstreamSpec{{Name: "x"}}}, "Config.Upstreams[0].SubDomain"},
		{"bad zone", Config{Writer: w, Upstreams: []UpstreamSpec{{Name: "x", SubDomain: "worker", Zone: "64q"}}}, "Config.Upstreams[0].Zone"},
		{"negative", Config{Writer: w, Upstreams: []UpstreamSpec{ok}, Coalesce: -1}, "negative"},
	} {
		_, err := New(obs, tc.cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New err = %v, want ErrConfig naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewFileWriter(FileConfig{}); !errors.Is(err, ErrConfig) {
		t.Errorf("NewFileWriter without Path: err = %v, want ErrConfig", err)
	}
	if _, err := NewPlusWriter(PlusConfig{URL: "ftp://x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("NewPlusWriter with ftp URL: err = %v, want ErrConfig", err)
	}
}

func TestCheckAddrRefusesConfigInjection(t *testing.T) {
	for _, a := range []string{"127.0.0.1:80", "[::1]:8080", "app-1.example.com:443"} {
		if err := checkAddr(a); err != nil {
			t.Errorf("checkAddr(%q) = %v, want nil", a, err)
		}
	}
	for _, a := range []string{"", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", "h:80; } server { listen 80", "a b:80", "x$y:80", "x#y:80"} {
		if err := checkAddr(a); !errors.Is(err, errBadEndpoint) {
			t.Errorf("checkAddr(%q) = %v, want errBadEndpoint", a, err)
		}
	}
}

func TestDefaultTemplate(t *testing.T) {
	w, err := NewFileWriter(FileConfig{Path: filepath.Join(t.TempDir(), "u.conf")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Render([]Upstream{
		{Name: "workers", Servers: []Server{{Name: "w1", Addr: "10.0.0.1:80", Weight: 1}, {Name: "w2", Addr: "10.0.0.2:80", Weight: 3}}},
		{Name: "mgt", Zone: "64k", Servers: []Server{{Name: "m2", Addr: "10.0.0.4:80", Weight: 1, Backup: true}}},
		{Name: "empty", Servers: []Server{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"upstream workers {\n    server 10.0.0.1:80; # w1\n    server 10.0.0.2:80 weight=3; # w2\n}",
		"upstream mgt {\n    zone mgt 64k;\n    server 127.0.0.1:1 down; # no routable member\n    server 10.0.0.4:80 backup; # m2\n}",
		"upstream empty {\n    server 127.0.0.1:1 down; # no routable member\n}",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rendered:\n%s\nlacks:\n%s", b, want)
		}
	}
}

// countingWriter records the applies it gets.
type countingWriter struct {
	mu      sync.Mutex
	applies [][]Upstream
	fail    atomic.Bool
}

func (w *countingWriter) Apply(_ context.Context, ups []Upstream) error {
	if w.fail.Load() {
		return errors.New("refused")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applies = append(w.applies, cloneUpstreams(ups))
	return nil
}

func (w *countingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.applies)
}

func TestBurstOfChangesIsCoalesced(t *testing.T) {
	const n = 8
	first := member(t, "w0", role.Worker, startBackend(t, "w0"), nil, nil)
	var late []*cluster.Node
	for i := 1; i <= n; i++ {
		name := "w" + strconv.Itoa(i)
		late = append(late, member(t, name, role.Worker, startBackend(t, name), first, func(c *cluster.Config) { c.DeferServing = true }))
	}
	obs := observer(t, first)
	waitFor(t, 20*time.Second, "the observer to see every member", func() bool {
		return len(obs.View().Alive("")) == n+1
	})
	w := &countingWriter{}
	// A window wider than gossip needs to spread the burst on a loaded
	// machine: the first change goes out at once, the rest together.
	c, err := New(obs, Config{Upstreams: []UpstreamSpec{{Name: "workers", SubDomain: "worker"}}, Writer: w, Coalesce: 3 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	waitServers(t, c, "workers", "w0")
	before := c.Stats()
	for _, m := range late {
		if err := m.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"w0"}
	for i := 1; i <= n; i++ {
		all = append(all, "w"+strconv.Itoa(i))
	}
	waitServers(t, c, "workers", all...)
	st := c.Stats()
	changes, applies := st.Changes-before.Changes, st.Applies-before.Applies
	t.Logf("%d members made ready at once: %d membership changes seen, %d applies", n, changes, applies)
	if applies >= changes || changes < 2 {
		t.Errorf("%d changes gave %d applies: not coalesced", changes, applies)
	}
	if w.count() != int(st.Applies) {
		t.Errorf("writer saw %d applies, stats say %d", w.count(), st.Applies)
	}

	// A failing writer is retried and reported, and the next success
	// clears the error.
	w.fail.Store(true)
	late[0].Close()
	waitFor(t, 20*time.Second, "a failed apply", func() bool { return c.Stats().Failures > 0 })
	if c.Stats().LastError == nil {
		t.Errorf("LastError is nil after a failure")
	}
	w.fail.Store(false)
	waitServers(t, c, "workers", slices.Delete(all, 1, 2)...)
	if err := c.Stats().LastError; err != nil {
		t.Errorf("LastError = %v after a successful retry", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: err = %v, want ErrRunning", err)
	}
}

// fakePlus is a stand-in of the Nginx Plus upstream API, from its
// documentation.
type fakePlus struct {
	mu      sync.Mutex
	next    int
	servers map[string][]plusServer
	calls   []string
}

func (f *fakePlus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method)
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/9/http/upstreams/")
	name, id, _ := strings.Cut(rest, "/servers")
	if _, known := f.servers[name]; !ok || !known {
		http.Error(w, `{"error":{"status":404,"text":"upstream not found"}}`, 404)
		return
	}
	id = strings.TrimPrefix(id, "/")
	switch r.Method {
	case http.MethodGet:
		json.NewEncoder(w).Encode(f.servers[name])
	case http.MethodPost:
		var s plusServer
		json.NewDecoder(r.Body).Decode(&s)
		if s.Weight == 0 {
			s.Weight = 1
		}
		f.next++
		s.ID = f.next
		f.servers[name] = append(f.servers[name], s)
		w.WriteHeader(http.StatusCreated)
	case http.MethodPatch, http.MethodDelete:
		i := slices.IndexFunc(f.servers[name], func(s plusServer) bool { return strconv.Itoa(s.ID) == id })
		if i < 0 {
			http.Error(w, "no such server", 404)
			return
		}
		if r.Method == http.MethodDelete {
			f.servers[name] = slices.Delete(f.servers[name], i, i+1)
			return
		}
		var p map[string]any
		json.NewDecoder(r.Body).Decode(&p)
		if _, ok := p["backup"]; ok {
			http.Error(w, "backup cannot be patched", 400)
			return
		}
		f.servers[name][i].Weight = int(p["weight"].(float64))
	}
}

func (f *fakePlus) state(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.servers[name] {
		out = append(out, fmt.Sprintf("%s/%d/%v", s.Server, s.Weight, s.Backup))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestPlusWriterAgainstStandIn(t *testing.T) {
	f := &fakePlus{servers: map[string][]plusServer{"mgt": {{ID: 100, Server: "10.0.0.9:80", Weight: 1}}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	w, err := NewPlusWriter(PlusConfig{URL: srv.URL + "/api/", Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(servers []Server, want string) {
		t.Helper()
		if err := w.Apply(ctx, []Upstream{{Name: "mgt", Servers: servers}}); err != nil {
			t.Fatal(err)
		}
		if got := f.state("mgt"); got != want {
			t.Fatalf("servers = %q, want %q", got, want)
		}
	}
	step([]Server{{Addr: "10.0.0.1:80", Weight: 1}, {Addr: "10.0.0.2:80", Weight: 1, Backup: true}},
		"10.0.0.1:80/1/false 10.0.0.2:80/1/true")
	step([]Server{{Addr: "10.0.0.1:80", Weight: 5}, {Addr: "10.0.0.2:80", Weight: 1, Backup: true}},
		"10.0.0.1:80/5/false 10.0.0.2:80/1/true")
	// Failover: the stand-by becomes the active, the old active is gone.
	step([]Server{{Addr: "10.0.0.2:80", Weight: 1}}, "10.0.0.2:80/1/false")
	err = w.Apply(ctx, []Upstream{{Name: "nope", Servers: []Server{}}})
	if !errors.Is(err, ErrPlusAPI) || !strings.Contains(err.Error(), "upstream nope") {
		t.Errorf("Apply to an unknown upstream: err = %v, want ErrPlusAPI naming it", err)
	}
}

func TestSafeName(t *testing.T) {
	for _, n := range []string{"w1", "node-a.example", "3f2c1e9a-uuid"} {
		if !safeName(n) {
			t.Errorf("safeName(%q) = false", n)
		}
	}
	for _, n := range []string{"", "a\nb", "a}b", "a;b", "a#b", "a\"b", "a$b", "a b"} {
		if safeName(n) {
			t.Errorf("safeName(%q) = true", n)
		}
	}
}
