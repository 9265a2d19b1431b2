package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/gateway"
	"github.com/carbonkit/carbon/examples/internal/server"
	"github.com/carbonkit/carbon/examples/internal/telemetry"
	"github.com/carbonkit/carbon/internal/leakcheck"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/lb"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

// startServer starts an example server with its own telemetry, as the
// worker and manager binaries do.
func startServer(t *testing.T, name string, r role.Role, seeds ...string) *server.Server {
	t.Helper()
	tel, err := telemetry.Setup("none", name, io.Discard, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := server.Start(ctx, server.Config{
		Cluster: cluster.Config{Domain: "metrics", Role: r, NodeName: name, BindAddr: "127.0.0.1:0", Seeds: seeds,
			Profile: cluster.ProfileLocal, MeterProvider: tel.Meter, TracerProvider: tel.Tracer},
		Metrics: tel.Metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func scrape(t *testing.T, s *server.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + telemetry.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

// series returns the values of a family by the given labels, joined by ",".
func series(fams map[string]*dto.MetricFamily, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		var k []string
		for _, l := range labels {
			k = append(k, label(m, l))
		}
		out[strings.Join(k, ",")] += value(m)
	}
	return out
}

// TestMetricsEndpoint scrapes /metrics of a running manager and worker and
// checks the membership, epoch, writable and rejected-writes series
// against each node's own state.
func TestMetricsEndpoint(t *testing.T) {
	mgr := startServer(t, "mgr-1", role.Manager)
	wrk := startServer(t, "wrk-1", role.Worker, mgr.Node().Self().Addr)
	for _, s := range []*server.Server{mgr, wrk} {
		testutil.WaitFor(t, 10*time.Second, s.Node().Name()+" sees both members serving and an active manager", func() bool {
			_, ok := s.Node().Active(cluster.SubDomainManager)
			alive := s.Node().View().Alive("")
			for _, m := range alive {
				if m.State != cluster.Serving {
					return false
				}
			}
			return len(alive) == 2 && ok
		})
	}
	testutil.WaitFor(t, 5*time.Second, "the manager is writable", mgr.Node().Writable)
	// The revisions depsync would report: the worker is one behind.
	mgr.Node().SetRevision(cluster.RevisionID{Epoch: 1, Seq: 2})
	wrk.Node().SetRevision(cluster.RevisionID{Epoch: 1, Seq: 1})
	for _, s := range []*server.Server{mgr, wrk} {
		testutil.WaitFor(t, 10*time.Second, s.Node().Name()+" sees both revisions", func() bool {
			a, _ := s.Node().View().Member("mgr-1")
			b, _ := s.Node().View().Member("wrk-1")
			return a.HasRevision && b.HasRevision
		})
	}
	// One write the worker must refuse, for the rejected-writes counter.
	resp, err := http.Post("http://"+wrk.HTTPAddr()+"/api/artifacts", "application/json", strings.NewReader(`{"name":"a","version":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("write to a worker: %s, want 403", resp.Status)
	}

	for _, s := range []*server.Server{mgr, wrk} {
		n := s.Node()
		t.Run(n.Name(), func(t *testing.T) {
			fams := scrape(t, s)
			want := map[string]float64{}
			for _, m := range n.Members() {
				want[fmt.Sprintf("%s,%s,%s,%s", m.SubDomain, m.Role, m.Status, m.State)]++
			}
			got := series(fams, "carbon_cluster_members", "carbon_subdomain", "carbon_role", "carbon_status", "carbon_state")
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("carbon_cluster_members = %v, want %v (the node's own view)", got, want)
			}
			active, _ := n.Active(cluster.SubDomainManager)
			epochs := series(fams, "carbon_cluster_epoch", "carbon_subdomain", "carbon_active")
			if e, ok := epochs["mgt,"+active.Name]; !ok || e != float64(n.View().Epoch(cluster.SubDomainManager)) || e == 0 {
				t.Errorf("carbon_cluster_epoch = %v, want mgt,%s = %d", epochs, active.Name, n.View().Epoch(cluster.SubDomainManager))
			}
			w := series(fams, "carbon_cluster_writable", "carbon_domain")
			wantW := 0.0
			if n.Writable() {
				wantW = 1
			}
			if v, ok := w["metrics"]; !ok || v != wantW {
				t.Errorf("carbon_cluster_writable = %v, want metrics = %v", w, wantW)
			}
			if trust := series(fams, "carbon_cluster_members", "carbon_trust"); trust["off"] != 2 {
				t.Errorf("carbon_cluster_members by carbon_trust = %v, want off = 2 (no trust root)", trust)
			}
			if lag := series(fams, "carbon_cluster_revision_lagging", "carbon_domain"); lag["metrics"] != 1 {
				t.Errorf("carbon_cluster_revision_lagging = %v, want metrics = 1 (the worker is one revision behind)", lag)
			}
			rej := series(fams, "carbon_role_rejected_writes_total")
			if n.Role() == role.Worker && rej[""] < 1 {
				t.Errorf("carbon_role_rejected_writes_total = %v on a worker that refused a write, want >= 1", rej)
			}
			if _, ok := fams["go_goroutines"]; !ok {
				t.Error("go_goroutines missing: the runtime collector is not registered")
			}
		})
	}
}

// TestGatewayMetrics scrapes the gateway's own /metrics after calls
// through it: the lb picks of the worker that served them.
func TestGatewayMetrics(t *testing.T) {
	mgr := startServer(t, "mgr-g", role.Manager)
	wrk := startServer(t, "wrk-g", role.Worker, mgr.Node().Self().Addr)
	tel, err := telemetry.Setup("none", "gateway", io.Discard, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := cluster.Join(ctx, cluster.Config{Domain: "metrics", Observer: true, NodeName: "gw", BindAddr: "127.0.0.1:0",
		Seeds: []string{mgr.Node().Self().Addr}, Profile: cluster.ProfileLocal, MeterProvider: tel.Meter})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	testutil.WaitFor(t, 10*time.Second, "the gateway's observer sees the worker serving", func() bool {
		m, ok := obs.View().Member("wrk-g")
		return ok && m.Routable()
	})
	g, err := gateway.Start(gateway.Config{Reads: gateway.Route{Node: obs, SubDomain: cluster.SubDomainWorker, Policy: lb.RoundRobin},
		Options: []lb.Option{lb.WithMeterProvider(tel.Meter)}, Metrics: tel.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const calls = 5
	for range calls {
		resp, err := http.Get("http://" + g.HTTPAddr() + "/api/artifacts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET through the gateway: %s", resp.Status)
		}
	}
	resp, err := http.Get("http://" + g.HTTPAddr() + telemetry.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the gateway's /metrics: %v", err)
	}
	picks := series(fams, "carbon_lb_picks_total", "member")
	if picks[wrk.Node().Name()] != calls {
		t.Errorf("carbon_lb_picks_total = %v, want %d for %s", picks, calls, wrk.Node().Name())
	}
	if _, ok := fams["carbon_lb_ejections_total"]; !ok {
		t.Error("carbon_lb_ejections_total missing")
	}
	members := series(fams, "carbon_cluster_members", "carbon_role")
	if members["observer"] != 1 || members["worker"] != 1 || members["manager"] != 1 {
		t.Errorf("the gateway's carbon_cluster_members by role = %v, want one each", members)
	}
}
