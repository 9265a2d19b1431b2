package cluster

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/carbonkit/carbon/role"
)

// StatusRefresh is how often the HTML status page reloads itself.
const StatusRefresh = 2 * time.Second

// StatusReport is what the status page shows: one DomainStatus per Node
// given to [NewStatusHandler], as each Node sees its domain. It is the page's
// JSON document.
type StatusReport struct {
	// Generated is when the page was rendered.
	Generated time.Time `json:"generated"`
	// Domains has one entry per Node, in the order they were given.
	Domains []DomainStatus `json:"domains"`
}

// DomainStatus is one Node's view of its domain.
type DomainStatus struct {
	// Domain is the domain's name.
	Domain string `json:"domain"`
	// Self is the name of the Node that sees it.
	Self string `json:"self"`
	// SelfRole is the Node's role: "worker", "manager" or "observer".
	SelfRole string `json:"self_role"`
	// Writable reports whether the Node may write now.
	Writable bool `json:"writable"`
	// Version is the view's version.
	Version uint64 `json:"version"`
	// ManagerRevision is the newest artifact revision an active manager
	// of the domain reports ("<epoch>-<seq>", see [Node.SetRevision]), ""
	// if none does: what every member that reports a revision should run.
	ManagerRevision string `json:"manager_revision,omitempty"`
	// Lagging is how many members report a revision older than
	// ManagerRevision.
	Lagging int `json:"lagging"`
	// SubDomains are sorted by name; observers, which have no sub-domain,
	// are grouped last under the name "".
	SubDomains []SubDomainStatus `json:"sub_domains"`
}

// SubDomainStatus is one sub-domain of a domain.
type SubDomainStatus struct {
	// Name is the sub-domain ("" for observers without one).
	Name string `json:"name"`
	// Managers reports whether the sub-domain has managers, alive or not:
	// only then do Active and Epoch mean anything.
	Managers bool `json:"managers"`
	// Active is the name of the active manager, "" if none.
	Active string `json:"active,omitempty"`
	// Epoch is the active manager's fencing token (0 if none, and in
	// Active/Active mode).
	Epoch uint64 `json:"epoch,omitempty"`
	// Members are sorted by name, failed and left ones included, except
	// observers that left (tools such as the carbon CLI that ran).
	Members []MemberStatus `json:"members"`
}

// MemberStatus is one member as the status page shows it.
type MemberStatus struct {
	Name string `json:"name"`
	Role string `json:"role"` // "worker", "manager" or "observer"
	// ActsAs is "manager" for an observer that acts for the managers (an
	// operator's tool allowed to drain and remove members), else "".
	ActsAs    string `json:"acts_as,omitempty"`
	SubDomain string `json:"sub_domain"`
	Status    string `json:"status"` // liveness: alive, leaving, left, failed
	State     string `json:"state"`  // serving state: starting, serving, draining
	// Routable reports whether balancers may send it new work.
	Routable bool `json:"routable"`
	// Active marks the active manager of the sub-domain.
	Active bool `json:"active"`
	// Claim is the epoch of its claim to be active, 0 if none.
	Claim uint64 `json:"claim,omitempty"`
	// Revision is the artifact revision the member reports it runs
	// ("<epoch>-<seq>"; "0-0" for a synchronizer with none yet), "" when
	// it reports none (it runs no synchronizer).
	Revision string `json:"revision,omitempty"`
	// Trust is whether the member's role is backed by a certificate it
	// proved: "verified", "unverified" (shown, never elected or routed
	// to), or "off" when the node that sees it has no trust root.
	Trust string `json:"trust"`
	// Lags marks a member whose Revision is older than the domain's
	// ManagerRevision.
	Lags       bool              `json:"lags,omitempty"`
	Addr       string            `json:"addr"` // gossip address
	Endpoints  map[string]string `json:"endpoints,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

// NewStatusReport returns the status of the domains the nodes see, as
// NewStatusHandler serves it. nil nodes are skipped.
func NewStatusReport(nodes ...*Node) StatusReport {
	st := StatusReport{Generated: time.Now().UTC(), Domains: []DomainStatus{}}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		st.Domains = append(st.Domains, domainStatus(n))
	}
	return st
}

func domainStatus(n *Node) DomainStatus {
	v := n.View()
	self := v.Self()
	ds := DomainStatus{
		Domain:   n.Domain(),
		Self:     n.Name(),
		SelfRole: self.Role.String(),
		Writable: n.Writable(),
		Version:  v.Version(),
	}
	bySub := map[string]*SubDomainStatus{}
	var names []string
	for _, m := range v.Members() {
		if m.Observer && m.Status == StatusLeft {
			// An observer that left is a tool that ran (every carbon CLI
			// command joins as one): serf keeps it a day, the page does not.
			continue
		}
		sub := m.SubDomain
		s, ok := bySub[sub]
		if !ok {
			s = &SubDomainStatus{Name: sub, Members: []MemberStatus{}}
			bySub[sub] = s
			names = append(names, sub)
		}
		if isManager(&m) {
			s.Managers = true
		}
		ms := MemberStatus{
			Name:       m.Name,
			Role:       m.Role.String(),
			SubDomain:  m.SubDomain,
			Status:     m.Status.String(),
			State:      m.State.String(),
			Routable:   m.Routable(),
			Claim:      m.Claim,
			Addr:       m.Addr,
			Endpoints:  m.Endpoints,
			Properties: m.Properties,
			Trust:      m.Trust.String(),
		}
		if m.Observer {
			ms.Role = role.None.String()
			if m.Role == role.Manager {
				ms.ActsAs = m.Role.String()
			}
		}
		if m.HasRevision {
			ms.Revision = m.Revision.String()
		}
		s.Members = append(s.Members, ms)
	}
	// Sub-domains by name, observers (no sub-domain) last.
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "":
			return 1
		case b == "":
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		s := bySub[name]
		if s.Managers {
			if a, ok := v.Active(name); ok {
				s.Active = a.Name
				s.Epoch = v.Epoch(name)
				for i := range s.Members {
					s.Members[i].Active = s.Members[i].Name == a.Name
				}
			}
		}
		ds.SubDomains = append(ds.SubDomains, *s)
	}
	markLagging(v, &ds)
	return ds
}

// markLagging sets the domain's ManagerRevision, the newest revision its
// active managers report (one publishes; in Active/Active mode or with
// several manager sub-domains, the newest stands for all), and flags the
// members that report an older one. A member that reports none runs no
// synchronizer and is never flagged.
func markLagging(v *View, ds *DomainStatus) {
	ref, found := managerRevision(v)
	if !found {
		return
	}
	ds.ManagerRevision = ref.String()
	for i := range ds.SubDomains {
		for j := range ds.SubDomains[i].Members {
			ms := &ds.SubDomains[i].Members[j]
			if m, ok := v.Member(ms.Name); ok && lags(&m, ref) {
				ms.Lags = true
				ds.Lagging++
			}
		}
	}
}

// managerRevision is the newest revision an active manager of v reports.
func managerRevision(v *View) (RevisionID, bool) {
	var ref RevisionID
	found := false
	for _, a := range v.actives {
		if a.HasRevision && (!found || ref.Compare(a.Revision) < 0) {
			ref, found = a.Revision, true
		}
	}
	return ref, found
}

// lags reports whether m reports a revision older than ref. Observers that
// left are left out, as on the status page.
func lags(m *Member, ref RevisionID) bool {
	return m.HasRevision && m.Revision.Compare(ref) < 0 && !(m.Observer && m.Status == StatusLeft)
}

// countLagging is how many members of v lag ref.
func countLagging(v *View, ref RevisionID) int {
	c := 0
	for _, m := range v.members {
		if lags(m, ref) {
			c++
		}
	}
	return c
}

// NewStatusHandler returns an http.Handler of a status page for the domains
// the nodes see (a process may hold several Nodes, one per domain): each
// domain, its sub-domains, their members with role, liveness, serving state,
// artifact revision and endpoints, the active manager with its epoch for
// every sub-domain that has managers, and the members whose revision lags
// the active manager's (see [Node.SetRevision]).
//
// It answers GET and HEAD: JSON (a [StatusReport]) when the query has format=json
// or the Accept header asks for application/json, otherwise an HTML page
// that reloads itself every [StatusRefresh]. Other methods get 405.
//
// The page discloses member addresses and endpoints: mount it where only
// operators can reach it, as the management console.
func NewStatusHandler(nodes ...*Node) http.Handler {
	nodes = slices.DeleteFunc(slices.Clone(nodes), func(n *Node) bool { return n == nil })
	return statusHandler{nodes: nodes}
}

type statusHandler struct{ nodes []*Node }

func (h statusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "cluster: status page: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	st := NewStatusReport(h.nodes...)
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = statusPage.Execute(w, statusData{StatusReport: st, Refresh: int(StatusRefresh / time.Second)})
}

func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	for _, a := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(a, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), "application/json") {
				return true
			}
		}
	}
	return false
}

type statusData struct {
	StatusReport
	Refresh int
}

// statusPage is rendered with html/template, which escapes every member's
// name, endpoint and property: they come from other members' tags.
var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"subName": func(s string) string {
		if s == "" {
			return "(no sub-domain: observers)"
		}
		return s
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>Carbon cluster status</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#1d2330;background:#f6f7f9}
h1{font-size:1.4em;margin:0 0 .2em}
h2{font-size:1.15em;margin:1.4em 0 .3em}
h3{font-size:1em;margin:1em 0 .3em}
.meta{color:#5b6475;font-size:.9em}
table{border-collapse:collapse;width:100%;table-layout:fixed;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6eb;font-size:.9em;vertical-align:top}
th{background:#eef0f4}
.pill{display:inline-block;padding:0 .5em;border-radius:.8em;font-size:.85em}
.alive,.serving,.yes{background:#d8f3dc;color:#1b5e20}
.failed,.left,.no{background:#fde2e1;color:#8e1c16}
.leaving,.draining,.starting{background:#fff3cd;color:#7a5b00}
.active{background:#1b5e20;color:#fff}
.lags{background:#fde2e1;color:#8e1c16}
code{font-size:.85em}
</style>
</head>
<body>
<h1>Carbon cluster status</h1>
<div class="meta">generated {{.Generated.Format "2006-01-02 15:04:05Z"}}, refreshes every {{.Refresh}} s, <a href="?format=json">JSON</a></div>
{{range .Domains}}
<h2>Domain <code>{{.Domain}}</code></h2>
<div class="meta">seen by <b>{{.Self}}</b> ({{.SelfRole}}{{if .Writable}}, writable{{end}}), view version {{.Version}}{{if .ManagerRevision}}, manager's revision <b>{{.ManagerRevision}}</b>{{if .Lagging}}, <span class="pill lags">{{.Lagging}} lagging</span>{{end}}{{end}}</div>
{{range .SubDomains}}
<h3>Sub-domain <code>{{subName .Name}}</code>{{if .Managers}} &mdash; active manager: {{if .Active}}<b>{{.Active}}</b>, epoch {{.Epoch}}{{else}}<span class="pill no">none</span>{{end}}{{end}}</h3>
<table>
<colgroup><col style="width:16%"><col style="width:10%"><col style="width:9%"><col style="width:11%"><col style="width:8%"><col style="width:10%"><col style="width:22%"><col style="width:14%"></colgroup>
<tr><th>member</th><th>role</th><th>status</th><th>serving state</th><th>routable</th><th>revision</th><th>endpoints</th><th>gossip</th></tr>
{{range .Members}}<tr>
<td>{{.Name}}{{if .Active}} <span class="pill active">active</span>{{end}}</td>
<td>{{.Role}}{{if .ActsAs}} (for the {{.ActsAs}}s){{end}}{{if eq .Trust "verified"}} <span class="pill yes">verified</span>{{else if eq .Trust "unverified"}} <span class="pill no">unverified</span>{{end}}</td>
<td><span class="pill {{.Status}}">{{.Status}}</span></td>
<td><span class="pill {{.State}}">{{.State}}</span></td>
<td>{{if .Routable}}<span class="pill yes">yes</span>{{else}}<span class="pill no">no</span>{{end}}</td>
<td>{{if .Revision}}<code>{{.Revision}}</code>{{if .Lags}} <span class="pill lags">lags</span>{{end}}{{else}}&mdash;{{end}}</td>
<td>{{range $k, $v := .Endpoints}}<code>{{$k}}={{$v}}</code><br>{{end}}</td>
<td><code>{{.Addr}}</code></td>
</tr>
{{end}}</table>
{{end}}
{{else}}
<p>No node.</p>
{{end}}
</body>
</html>
`))
