package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/role"
)

// statusGet fetches the page with the given query and Accept header.
func statusGet(t *testing.T, h http.Handler, query, accept string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/status"+query, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestStatusHandler(t *testing.T) {
	mgrCfg := local("status.domain", role.Manager)
	mgrCfg.NodeName = "mgr-1"
	mgrCfg.Endpoints = map[string]string{"grpc": "127.0.0.1:9001", "http": "127.0.0.1:9002"}
	mgr := start(t, mgrCfg)

	wCfg := local("status.domain", role.Worker)
	wCfg.NodeName = "worker-<b>1</b>" // a name that must come out escaped
	wCfg.Seeds = []string{addrOf(mgr)}
	wCfg.Endpoints = map[string]string{"grpc": "127.0.0.1:9003"}
	wCfg.Properties = map[string]string{"zone": "<script>alert(1)</script>"}
	w := start(t, wCfg)

	obsCfg := Config{Domain: "status.domain", Observer: true, BindAddr: "127.0.0.1:0", Profile: ProfileLocal,
		NodeName: "gateway", Seeds: []string{addrOf(mgr)}, Logger: testLogger()}
	obs := start(t, obsCfg)

	waitFor(t, 10*time.Second, "the observer to see both members and the active manager", func() bool {
		_, ok := obs.Active(SubDomainManager)
		return len(obs.View().Alive("")) == 2 && ok
	})

	h := NewStatusHandler(obs, nil, w)

	t.Run("json", func(t *testing.T) {
		for _, c := range []struct{ query, accept string }{
			{"?format=json", ""},
			{"", "text/html;q=0.5, application/json"},
		} {
			rec := statusGet(t, h, c.query, c.accept)
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("%q %q: %d %s", c.query, c.accept, rec.Code, rec.Header().Get("Content-Type"))
			}
			var st StatusReport
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Fatalf("decode: %v\n%s", err, rec.Body)
			}
			if len(st.Domains) != 2 {
				t.Fatalf("want 2 domain entries (nil node skipped), got %d", len(st.Domains))
			}
			d := st.Domains[0]
			if d.Domain != "status.domain" || d.Self != "gateway" || d.SelfRole != "observer" || d.Writable {
				t.Fatalf("domain entry: %+v", d)
			}
			subs := map[string]SubDomainStatus{}
			for _, s := range d.SubDomains {
				subs[s.Name] = s
			}
			mgt, ok := subs[SubDomainManager]
			if !ok || !mgt.Managers || mgt.Active != "mgr-1" || mgt.Epoch == 0 || mgt.Epoch != obs.View().Epoch(SubDomainManager) {
				t.Fatalf("mgt sub-domain: %+v", mgt)
			}
			if len(mgt.Members) != 1 || !mgt.Members[0].Active || mgt.Members[0].Role != "manager" ||
				mgt.Members[0].Endpoints["http"] != "127.0.0.1:9002" || mgt.Members[0].Status != "alive" || mgt.Members[0].State != "serving" || !mgt.Members[0].Routable {
				t.Fatalf("mgt members: %+v", mgt.Members)
			}
			wk, ok := subs[SubDomainWorker]
			if !ok || wk.Managers || wk.Active != "" || len(wk.Members) != 1 || wk.Members[0].Role != "worker" || wk.Members[0].Active {
				t.Fatalf("worker sub-domain: %+v", wk)
			}
			if o, ok := subs[""]; !ok || len(o.Members) != 1 || o.Members[0].Role != "observer" || o.Members[0].Routable {
				t.Fatalf("observers: %+v", o)
			}
			if st.Domains[1].Self != w.Name() || st.Domains[1].SelfRole != "worker" {
				t.Fatalf("second entry: %+v", st.Domains[1])
			}
		}
	})

	t.Run("html", func(t *testing.T) {
		rec := statusGet(t, h, "", "text/html")
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
		}
		body := rec.Body.String()
		for _, want := range []string{
			`<meta http-equiv="refresh" content="2">`,
			"status.domain", "mgr-1", "active manager: <b>mgr-1</b>, epoch",
			"worker-&lt;b&gt;1&lt;/b&gt;", "http=127.0.0.1:9002", "serving",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(body, "<b>1</b>") || strings.Contains(body, "<script>") {
			t.Errorf("page does not escape member data:\n%s", body)
		}
	})

	t.Run("method", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/status", strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Fatalf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
		}
	})

	t.Run("failed member", func(t *testing.T) {
		w.Close()
		waitFor(t, 10*time.Second, "the worker to show failed", func() bool {
			var st StatusReport
			b, _ := io.ReadAll(statusGet(t, h, "?format=json", "").Body)
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			for _, s := range st.Domains[0].SubDomains {
				for _, m := range s.Members {
					if m.Name == w.Name() {
						return m.Status == "failed" && !m.Routable
					}
				}
			}
			return false
		})
	})
}

func TestStatusHandlerNoNode(t *testing.T) {
	rec := statusGet(t, NewStatusHandler(), "?format=json", "")
	var st StatusReport
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Domains == nil || len(st.Domains) != 0 {
		t.Fatalf("%v %s", err, rec.Body)
	}
	if rec := statusGet(t, NewStatusHandler(), "", ""); !strings.Contains(rec.Body.String(), "No node.") {
		t.Fatalf("%s", rec.Body)
	}
}
