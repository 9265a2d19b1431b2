package carboncli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/carbonkit/carbon/cluster"
)

// env is what a command runs with: the observer node, the options and
// standard output.
type env struct {
	n   *cluster.Node
	o   *options
	out io.Writer
}

// command is one carbon command.
type command struct {
	usage            string
	minArgs, maxArgs int
	// check validates the arguments before the tool joins the domain.
	check func(args []string) error
	// untimed commands run until ctx ends (watch); -timeout bounds the
	// others.
	untimed bool
	run     func(ctx context.Context, e *env) error
}

var commands = map[string]command{
	"members":   {usage: "members [-json]", run: members},
	"active":    {usage: "active [SUB-DOMAIN] [-json]", maxArgs: 1, run: active},
	"watch":     {usage: "watch [-json]", untimed: true, run: watch},
	"drain":     {usage: "drain NODE -manager [-json]", minArgs: 1, maxArgs: 1, run: drain},
	"leave":     {usage: "leave NODE -manager [-json]", minArgs: 1, maxArgs: 1, run: leave},
	"keys":      {usage: "keys list | keys install|use|remove KEY", minArgs: 1, maxArgs: 2, check: checkKeys, run: keys},
	"revisions": {usage: "revisions [-json]", run: revisions},
	"status":    {usage: "status [-json]", run: status},
}

func (e *env) json(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) table(header string, rows [][]string) {
	w := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// domainStatus is the status page's view of the domain from this node.
func (e *env) domainStatus() cluster.DomainStatus { return cluster.NewStatusReport(e.n).Domains[0] }

// memberStatuses are the members, sorted by name, without this tool's own
// observer.
func (e *env) memberStatuses() []cluster.MemberStatus {
	var out []cluster.MemberStatus
	for _, s := range e.domainStatus().SubDomains {
		for _, m := range s.Members {
			if m.Name != e.n.Name() {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b cluster.MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func roleOf(m cluster.MemberStatus) string {
	if m.ActsAs != "" {
		return m.Role + "(" + m.ActsAs + ")"
	}
	return m.Role
}

// members prints the members: -json is an array of cluster.MemberStatus
// objects, the members of the status page's JSON.
func members(_ context.Context, e *env) error {
	ms := e.memberStatuses()
	if e.o.json {
		if ms == nil {
			ms = []cluster.MemberStatus{}
		}
		return e.json(ms)
	}
	var rows [][]string
	for _, m := range ms {
		act := ""
		if m.Active {
			act = "active"
		}
		rows = append(rows, []string{m.Name, roleOf(m), dash(m.SubDomain), m.Status, m.State, dash(act), dash(m.Revision), m.Addr})
	}
	e.table("NAME\tROLE\tSUB-DOMAIN\tSTATUS\tSTATE\tACTIVE\tREVISION\tADDR", rows)
	return nil
}

// ActiveJSON is one line of active -json: the active manager of a
// sub-domain.
type ActiveJSON struct {
	SubDomain string            `json:"sub_domain"`
	Name      string            `json:"name"`
	Epoch     uint64            `json:"epoch"`
	Addr      string            `json:"addr"`
	Endpoints map[string]string `json:"endpoints,omitempty"`
}

// active prints the active manager of each sub-domain with managers, or
// of the one named (ExitNotFound if it has none).
func active(_ context.Context, e *env) error {
	v := e.n.View()
	var subs []string
	if len(e.o.args) == 1 {
		subs = e.o.args
	} else {
		for _, s := range e.domainStatus().SubDomains {
			if s.Managers {
				subs = append(subs, s.Name)
			}
		}
	}
	out := []ActiveJSON{}
	for _, sub := range subs {
		a, ok := v.Active(sub)
		if !ok {
			if len(e.o.args) == 1 {
				return codeError{ExitNotFound, fmt.Errorf("sub-domain %q has no active manager as this node sees domain %q", sub, e.n.Domain())}
			}
			continue
		}
		out = append(out, ActiveJSON{SubDomain: sub, Name: a.Name, Epoch: v.Epoch(sub), Addr: a.Addr, Endpoints: a.Endpoints})
	}
	if e.o.json {
		return e.json(out)
	}
	var rows [][]string
	for _, a := range out {
		rows = append(rows, []string{a.SubDomain, a.Name, fmt.Sprint(a.Epoch), dash(a.Endpoints["grpc"])})
	}
	e.table("SUB-DOMAIN\tACTIVE\tEPOCH\tGRPC", rows)
	if len(out) == 0 {
		return codeError{ExitNotFound, fmt.Errorf("no sub-domain of %q has an active manager", e.n.Domain())}
	}
	return nil
}

// ControlJSON is the output of drain and leave -json.
type ControlJSON struct {
	Member string `json:"member"`
	Op     string `json:"op"` // "drain" or "leave"
	Status string `json:"status"`
	State  string `json:"state"`
}

// drain asks the member to drain, then waits until this node sees it
// draining.
func drain(ctx context.Context, e *env) error {
	name := e.o.args[0]
	if err := e.n.DrainMember(ctx, name); err != nil {
		return err
	}
	return e.await(ctx, "drain", name, func(m cluster.Member, ok bool) bool { return ok && m.State == cluster.Draining })
}

// leave asks the member to leave, then waits until this node sees it
// gone.
func leave(ctx context.Context, e *env) error {
	name := e.o.args[0]
	if err := e.n.LeaveMember(ctx, name); err != nil {
		return err
	}
	return e.await(ctx, "leave", name, func(m cluster.Member, ok bool) bool { return !ok || m.Status == cluster.StatusLeft })
}

func (e *env) await(ctx context.Context, op, name string, done func(cluster.Member, bool) bool) error {
	for v := range e.n.Watch(ctx) {
		m, ok := v.Member(name)
		if !done(m, ok) {
			continue
		}
		res := ControlJSON{Member: name, Op: op, Status: m.Status.String(), State: m.State.String()}
		if !ok {
			res.Status, res.State = "gone", ""
		}
		if e.o.json {
			return e.json(res)
		}
		fmt.Fprintf(e.out, "%s: %s, %s\n", name, res.Status, dash(res.State))
		return nil
	}
	return fmt.Errorf("%s accepted the %s, but this node did not see it done in time: %w", name, op, context.Cause(ctx))
}

// RevisionsJSON is the output of revisions -json.
type RevisionsJSON struct {
	// ManagerRevision is the newest revision an active manager reports,
	// "" if none does.
	ManagerRevision string `json:"manager_revision"`
	// Lagging is how many members lag it.
	Lagging int `json:"lagging"`
	// Members are sorted by name, this tool's observer left out.
	Members []RevisionMember `json:"members"`
}

// RevisionMember is one member of RevisionsJSON.
type RevisionMember struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	SubDomain string `json:"sub_domain"`
	Status    string `json:"status"`
	// Revision is "" for a member that runs no synchronizer.
	Revision string `json:"revision"`
	Lags     bool   `json:"lags"`
}

// revisions prints the revision of each member; ExitLagging if one lags.
func revisions(_ context.Context, e *env) error {
	ds := e.domainStatus()
	r := RevisionsJSON{ManagerRevision: ds.ManagerRevision, Lagging: ds.Lagging, Members: []RevisionMember{}}
	for _, m := range e.memberStatuses() {
		r.Members = append(r.Members, RevisionMember{Name: m.Name, Role: roleOf(m), SubDomain: m.SubDomain, Status: m.Status, Revision: m.Revision, Lags: m.Lags})
	}
	if e.o.json {
		if err := e.json(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "manager's revision: %s\n", dash(r.ManagerRevision))
		var rows [][]string
		for _, m := range r.Members {
			lags := ""
			if m.Lags {
				lags = "LAGS"
			}
			rows = append(rows, []string{m.Name, m.Role, dash(m.SubDomain), m.Status, dash(m.Revision), lags})
		}
		e.table("NAME\tROLE\tSUB-DOMAIN\tSTATUS\tREVISION\tLAGS", rows)
	}
	if r.Lagging > 0 {
		return codeError{ExitLagging, fmt.Errorf("%d members lag the manager's revision %s", r.Lagging, r.ManagerRevision)}
	}
	return nil
}

// status prints the status page's content; -json is its JSON document
// (cluster.StatusReport).
func status(_ context.Context, e *env) error {
	st := cluster.NewStatusReport(e.n)
	if e.o.json {
		return e.json(st)
	}
	for _, d := range st.Domains {
		fmt.Fprintf(e.out, "domain %s, seen by %s (view %d)", d.Domain, d.Self, d.Version)
		if d.ManagerRevision != "" {
			fmt.Fprintf(e.out, ", manager's revision %s, %d lagging", d.ManagerRevision, d.Lagging)
		}
		fmt.Fprintln(e.out)
		for _, s := range d.SubDomains {
			name := s.Name
			if name == "" {
				name = "(observers)"
			}
			fmt.Fprintf(e.out, "\nsub-domain %s", name)
			if s.Managers {
				if s.Active != "" {
					fmt.Fprintf(e.out, ": active manager %s, epoch %d", s.Active, s.Epoch)
				} else {
					fmt.Fprint(e.out, ": NO ACTIVE MANAGER")
				}
			}
			fmt.Fprintln(e.out)
			var rows [][]string
			for _, m := range s.Members {
				flags := []string{}
				if m.Active {
					flags = append(flags, "active")
				}
				if m.Routable {
					flags = append(flags, "routable")
				}
				if m.Lags {
					flags = append(flags, "lags")
				}
				if m.Trust != "off" {
					flags = append(flags, m.Trust)
				}
				rows = append(rows, []string{m.Name, roleOf(m), m.Status, m.State, dash(m.Revision), dash(strings.Join(flags, ",")), m.Addr})
			}
			e.table("  NAME\tROLE\tSTATUS\tSTATE\tREVISION\tFLAGS\tADDR", indent(rows))
		}
	}
	return nil
}

func indent(rows [][]string) [][]string {
	for _, r := range rows {
		r[0] = "  " + r[0]
	}
	return rows
}
