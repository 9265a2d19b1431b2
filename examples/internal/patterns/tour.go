package patterns

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/examples/internal/server"
	"github.com/carbonkit/carbon/role"
)

// Step is one step of the tour.
type Step struct {
	// Name says what should hold.
	Name string
	// Held reports whether it did.
	Held bool
	// Detail says what was seen.
	Detail string
	// Took is how long the step ran.
	Took time.Duration
}

// String renders the step on one line, saying plainly whether it held.
func (s Step) String() string {
	mark := "[held]    "
	if !s.Held {
		mark = "[NOT HELD]"
	}
	return fmt.Sprintf("%s %s: %s (%s)", mark, s.Name, s.Detail, s.Took.Round(time.Millisecond))
}

// Report is the result of a tour.
type Report struct {
	Pattern int
	Steps   []Step
	// Notes are remarks that are not steps (what a pattern does not show).
	Notes []string
}

// Held reports whether every step held.
func (r Report) Held() bool {
	return len(r.Steps) > 0 && !slices.ContainsFunc(r.Steps, func(s Step) bool { return !s.Held })
}

// Run starts the topology of opts.Pattern, takes the tour, and stops
// everything. The error is about starting; a step that does not hold is in
// the Report.
func Run(ctx context.Context, opts Options) (Report, error) {
	t, err := Start(ctx, opts)
	if err != nil {
		return Report{Pattern: opts.Pattern}, err
	}
	defer t.Close()
	return t.Tour(ctx), nil
}

// Tour takes the topology through the steps of its pattern:
//
//  1. reads through the worker balancer succeed and are spread over both workers;
//  2. a write sent to a worker is rejected as read-only (FailedPrecondition,
//     READ_ONLY_NODE);
//  3. a write through the manager balancer (pattern 1: to the manager)
//     succeeds on the active manager, under its epoch;
//  4. the deployed artifact reaches every worker (a cluster message; in
//     pattern 2 through the workers' observer Nodes in the managers' domain);
//  5. the management console is served by managers and is 404 on workers;
//  6. (patterns 2 and 3) the active manager is killed and the stand-by takes
//     over: a new active at a higher epoch, and writes through the balancer
//     succeed again. Its time is measured.
//
// The tour kills a manager: take it once per Topology.
func (t *Topology) Tour(ctx context.Context) Report {
	r := Report{Pattern: t.opts.Pattern}
	step := func(name string, f func(ctx context.Context) (bool, string)) {
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, t.opts.StepTimeout)
		held, detail := f(sctx)
		cancel()
		s := Step{Name: name, Held: held, Detail: detail, Took: time.Since(start)}
		r.Steps = append(r.Steps, s)
		if t.opts.Progress != nil {
			fmt.Fprintln(t.opts.Progress, "  "+s.String())
		}
	}
	reads, err := t.client(t.readsAddr)
	if err != nil {
		step("connect to the balancers", func(context.Context) (bool, string) { return false, err.Error() })
		return r
	}
	writes, err := t.writesClient()
	if err != nil {
		step("connect to the balancers", func(context.Context) (bool, string) { return false, err.Error() })
		return r
	}

	step("reads through the worker balancer succeed and spread", func(ctx context.Context) (bool, string) {
		const n = 20
		served := map[string]int{}
		var failed []string
		for range n {
			resp, err := reads.ListArtifacts(ctx, &pb.ListArtifactsRequest{})
			if err != nil {
				failed = append(failed, status.Convert(err).Message())
				continue
			}
			served[resp.GetServedBy()]++
		}
		ok := len(failed) == 0 && len(served) == len(t.Workers)
		for name := range served {
			ok = ok && strings.HasPrefix(name, "worker-")
		}
		d := fmt.Sprintf("%d/%d succeeded, served by %s", n-len(failed), n, names(served))
		if len(failed) > 0 {
			d += "; first failure: " + failed[0]
		}
		return ok, d
	})

	step("a write sent to a worker is rejected", func(ctx context.Context) (bool, string) {
		w := t.Workers[0]
		c, err := t.serverClient(w)
		if err != nil {
			return false, err.Error()
		}
		_, err = c.DeployArtifact(ctx, &pb.DeployArtifactRequest{Name: "webapp", Version: "0.0.1"})
		if err == nil {
			return false, w.Node().Name() + " accepted a write"
		}
		ro, isRO := role.AsReadOnly(err)
		code := status.Code(err)
		d := fmt.Sprintf("%s answered %s", w.Node().Name(), code)
		if isRO {
			d += fmt.Sprintf(" %s (role %s, domain %s)", role.ReasonReadOnly, ro.Role, ro.Domain)
		} else {
			d += ": " + status.Convert(err).Message()
		}
		return isRO && code == codes.FailedPrecondition, d
	})

	var deployed *pb.Artifact
	step("a write through "+t.writesVia+" succeeds", func(ctx context.Context) (bool, string) {
		active, ok := t.watch.Active(cluster.SubDomainManager)
		if !ok {
			return false, "no active manager"
		}
		epoch := t.watch.View().Epoch(cluster.SubDomainManager)
		a, err := writes.DeployArtifact(ctx, &pb.DeployArtifactRequest{Name: "webapp", Version: "1.0.0"})
		if err != nil {
			return false, "deploy failed: " + err.Error()
		}
		deployed = a
		d := fmt.Sprintf("webapp 1.0.0 deployed by %s at epoch %d (election round %d)", a.GetServedBy(), a.GetEpoch(), cluster.EpochRound(a.GetEpoch()))
		return a.GetServedBy() == active.Name && a.GetEpoch() == epoch, d
	})

	step("the deployed artifact reaches every worker", func(ctx context.Context) (bool, string) {
		if deployed == nil {
			return false, "nothing was deployed"
		}
		start := time.Now()
		var got []string
		for _, w := range t.Workers {
			c, err := t.serverClient(w)
			if err != nil {
				return false, err.Error()
			}
			err = poll(ctx, 10*time.Millisecond, func() (bool, string) {
				a, err := c.GetArtifact(ctx, &pb.GetArtifactRequest{Name: "webapp"})
				if err != nil {
					return false, err.Error()
				}
				return a.GetVersion() == deployed.GetVersion(), "version " + a.GetVersion()
			})
			if err != nil {
				return false, fmt.Sprintf("%s: %v", w.Node().Name(), err)
			}
			got = append(got, fmt.Sprintf("%s after %s", w.Node().Name(), time.Since(start).Round(time.Millisecond)))
		}
		return true, "webapp 1.0.0 on " + strings.Join(got, ", ")
	})

	step("the management console is on managers only", func(ctx context.Context) (bool, string) {
		mgr, err := httpGet(ctx, "http://"+t.writesHTTP+"/console")
		if err != nil {
			return false, err.Error()
		}
		wk, err := httpGet(ctx, "http://"+t.Workers[0].HTTPAddr()+"/console")
		if err != nil {
			return false, err.Error()
		}
		return mgr == http.StatusOK && wk == http.StatusNotFound,
			fmt.Sprintf("/console through %s: %d; on %s: %d", t.writesVia, mgr, t.Workers[0].Node().Name(), wk)
	})

	if len(t.Managers) < 2 {
		r.Notes = append(r.Notes, "pattern 1 has a single manager (not HA): there is no stand-by to take over, so no fail-over step")
		return r
	}
	step("the active manager is killed and the stand-by takes over", func(ctx context.Context) (bool, string) {
		old, ok := t.watch.Active(cluster.SubDomainManager)
		if !ok {
			return false, "no active manager to kill"
		}
		oldEpoch := t.watch.View().Epoch(cluster.SubDomainManager)
		var victim *server.Server
		for _, m := range t.Managers {
			if m.Node().Name() == old.Name {
				victim = m
			}
		}
		if victim == nil {
			return false, "active manager " + old.Name + " is not one of ours"
		}
		killed := time.Now()
		victim.Kill()
		t.killed[victim] = true

		var elected time.Duration
		var newActive string
		var newEpoch uint64
		var accepted *pb.Artifact
		var lastErr error
		err := poll(ctx, 20*time.Millisecond, func() (bool, string) {
			if elected == 0 {
				if a, ok := t.watch.Active(cluster.SubDomainManager); ok && a.Name != old.Name {
					elected, newActive, newEpoch = time.Since(killed), a.Name, t.watch.View().Epoch(cluster.SubDomainManager)
				}
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			a, err := writes.DeployArtifact(cctx, &pb.DeployArtifactRequest{Name: "webapp", Version: "1.0.1"})
			if err != nil {
				lastErr = err
				return false, status.Convert(err).Message()
			}
			accepted = a
			return elected != 0, ""
		})
		took := time.Since(killed)
		if err != nil {
			return false, fmt.Sprintf("%s killed; no take-over within the deadline: %v (last write error: %v)", old.Name, err, lastErr)
		}
		d := fmt.Sprintf("%s killed; %s active at epoch %d (round %d, was %d) after %s; first write through %s accepted by %s after %s",
			old.Name, newActive, newEpoch, cluster.EpochRound(newEpoch), cluster.EpochRound(oldEpoch), elected.Round(time.Millisecond), t.writesVia, accepted.GetServedBy(), took.Round(time.Millisecond))
		return newActive != old.Name && newEpoch > oldEpoch && accepted.GetServedBy() == newActive && accepted.GetEpoch() == newEpoch, d
	})
	return r
}

func httpGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	// No keep-alive: nothing is left open when the topology stops.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
