package server

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/role"
)

// routes is the server's HTTP surface:
//
//	GET  /                       links
//	GET  /status                 cluster status page (HTML, or JSON with ?format=json)
//	GET  /healthz                200 while serving
//	GET  /metrics                Prometheus metrics (when Config.Metrics is set)
//	GET  /readyz                 200 once the catalog has caught up (503 while catching up)
//	GET  /api/catalog            the whole catalog and its position (a Snapshot; always served;
//	                             ?artifacts=0: the position only)
//	GET  /api/artifacts          list            (read)
//	POST /api/artifacts          deploy          (write)
//	GET  /api/artifacts/{name}   get             (read)
//	PUT  /api/artifacts/{name}   update          (write)
//	DELETE /api/artifacts/{name} undeploy        (write)
//	/console                     management console, managers only (404 on workers)
//
// The API and the console are behind the role Guard: a worker or a stand-by
// manager answers writes with 403 and a problem+json body. Every API reply
// carries the epoch and sequence number of the catalog it reflects (or of
// the change a write made) in the Carbon-Catalog-Epoch and
// Carbon-Catalog-Seq headers; reads on a node that is catching up, and
// writes a manager cannot acknowledge, answer 503 with Retry-After.
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET "+CatalogPath, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("artifacts") == "0" {
			writeJSON(w, http.StatusOK, s.snapshotHead())
			return
		}
		writeJSON(w, http.StatusOK, s.snapshot())
	})
	api.HandleFunc("GET /api/artifacts", func(w http.ResponseWriter, r *http.Request) {
		if !s.httpReadable(w) {
			return
		}
		list, at := s.store.list()
		setPositionHeaders(w, at)
		writeJSON(w, http.StatusOK, &pb.ListArtifactsResponse{Artifacts: list, ServedBy: s.node.Name()})
	})
	api.HandleFunc("POST /api/artifacts", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Name, Version string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Name == "" || req.Version == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"name": "...", "version": "..."}`})
			return
		}
		s.httpWrite(w, r, change{Name: req.Name, Version: req.Version}, http.StatusCreated)
	})
	api.HandleFunc("GET /api/artifacts/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !s.httpReadable(w) {
			return
		}
		a, at, ok := s.store.get(r.PathValue("name"))
		setPositionHeaders(w, at)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such artifact"})
			return
		}
		a.ServedBy = s.node.Name()
		writeJSON(w, http.StatusOK, a)
	})
	api.HandleFunc("PUT /api/artifacts/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Version string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Version == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"version": "..."}`})
			return
		}
		if _, _, ok := s.store.get(r.PathValue("name")); !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such artifact"})
			return
		}
		s.httpWrite(w, r, change{Name: r.PathValue("name"), Version: req.Version}, http.StatusOK)
	})
	api.HandleFunc("DELETE /api/artifacts/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.httpWrite(w, r, change{Name: r.PathValue("name"), Remove: true}, http.StatusNoContent)
	})

	console := http.NewServeMux()
	console.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		active, _ := s.node.Active(s.node.SubDomain())
		list, _ := s.store.list()
		_ = consolePage.Execute(w, map[string]any{
			"Node": s.node.Name(), "Domain": s.node.Domain(), "Writable": s.node.Writable(),
			"Epoch": s.node.Epoch(), "Active": active.Name, "Artifacts": list,
		})
	})
	console.HandleFunc("POST /console/deploy", func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := s.write(r.Context(), change{Name: r.FormValue("name"), Version: r.FormValue("version")}); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		http.Redirect(w, r, "/console", http.StatusSeeOther)
	})
	console.HandleFunc("POST /console/undeploy", func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := s.write(r.Context(), change{Name: r.FormValue("name"), Remove: true}); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		http.Redirect(w, r, "/console", http.StatusSeeOther)
	})

	mux := http.NewServeMux()
	mux.Handle("/api/", s.guard.HTTP(api))
	mux.Handle("/console", role.ManagerOnly(s.node, s.guard.HTTP(console)))
	mux.Handle("/console/", role.ManagerOnly(s.node, s.guard.HTTP(console)))
	nodes := []*cluster.Node{s.node}
	if s.follow != nil {
		nodes = append(nodes, s.follow)
	}
	mux.Handle("GET /status", cluster.NewStatusHandler(nodes...))
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if st := s.node.Self().State; st != cluster.Serving {
			http.Error(w, st.String(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		if !s.ready.Load() || s.node.Self().State != cluster.Serving {
			code = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		setPositionHeaders(w, s.store.position())
		writeJSON(w, code, s.snapshotHead())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = indexPage.Execute(w, map[string]any{"Node": s.node.Name(), "Role": s.node.Role().String(), "Manager": s.node.Role() == role.Manager})
	})
	return mux
}

// CatalogPath is where a server serves its whole catalog (a Snapshot),
// for peers that catch up and for tests.
const CatalogPath = "/api/catalog"

// HTTP names of EpochHeader and SeqHeader.
const (
	EpochHTTPHeader = "Carbon-Catalog-Epoch"
	SeqHTTPHeader   = "Carbon-Catalog-Seq"
)

func setPositionHeaders(w http.ResponseWriter, p Position) {
	w.Header().Set(EpochHTTPHeader, strconv.FormatUint(p.Epoch, 10))
	w.Header().Set(SeqHTTPHeader, strconv.FormatUint(p.Seq, 10))
}

// snapshot is the catalog with its position and the node's state.
func (s *Server) snapshot() Snapshot {
	list, at := s.store.list()
	return Snapshot{Node: s.node.Name(), Position: at, Ready: s.ready.Load(), Writable: s.writable(), Artifacts: list}
}

// snapshotHead is the snapshot without its artifacts.
func (s *Server) snapshotHead() Snapshot {
	return Snapshot{Node: s.node.Name(), Position: s.store.position(), Ready: s.ready.Load(), Writable: s.writable()}
}

func (s *Server) httpReadable(w http.ResponseWriter) bool {
	if err := s.readable(); err != nil {
		setPositionHeaders(w, s.store.position())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return false
	}
	return true
}

func (s *Server) httpWrite(w http.ResponseWriter, r *http.Request, c change, ok int) {
	a, ch, err := s.write(r.Context(), c)
	if err == nil {
		setPositionHeaders(w, ch.pos())
	}
	switch {
	case err == nil && a == nil:
		w.WriteHeader(ok)
	case err == nil:
		writeJSON(w, ok, a)
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrNotAcknowledged), errors.Is(err, ErrCatchingUp):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	case role.IsReadOnly(err):
		// Lost the active role between the Guard and the handler.
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

var indexPage = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Node}}</title></head>
<body style="font-family:system-ui,sans-serif">
<h1>{{.Node}} ({{.Role}})</h1>
<ul>
<li><a href="/status">cluster status</a></li>
<li><a href="/api/artifacts">artifacts (JSON)</a></li>
{{if .Manager}}<li><a href="/console">management console</a></li>{{end}}
</ul>
</body></html>
`))

var consolePage = template.Must(template.New("console").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Console of {{.Node}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1d2330}
table{border-collapse:collapse}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:left}
.ro{background:#fff3cd;padding:.5em;display:inline-block}
</style></head>
<body>
<h1>Management console</h1>
<p>Node <b>{{.Node}}</b> in domain <code>{{.Domain}}</code>.
{{if .Writable}}This is the active manager (epoch {{.Epoch}}).{{else}}<span class="ro">Read-only stand-by: the active manager is {{if .Active}}<b>{{.Active}}</b>{{else}}unknown{{end}}. Writes here are refused.</span>{{end}}</p>
<h2>Artifacts</h2>
<table><tr><th>name</th><th>version</th><th>epoch</th><th></th></tr>
{{range .Artifacts}}<tr><td>{{.Name}}</td><td>{{.Version}}</td><td>{{.Epoch}}</td>
<td><form method="post" action="/console/undeploy"><input type="hidden" name="name" value="{{.Name}}"><button>undeploy</button></form></td></tr>
{{else}}<tr><td colspan="4">none</td></tr>{{end}}
</table>
<h2>Deploy</h2>
<form method="post" action="/console/deploy">
<input name="name" placeholder="name" required> <input name="version" placeholder="version" required> <button>deploy</button>
</form>
<p><a href="/status">cluster status</a></p>
</body></html>
`))
