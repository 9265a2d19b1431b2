package nginxlb_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/gateway"
	"github.com/carbonkit/carbon/examples/internal/nginxlb"
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

// TestAppliesMetric runs a real Nginx in front of a worker and checks that
// the controllers' applies reach the Prometheus handler.
func TestAppliesMetric(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip("no nginx (apt-get install nginx)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wrk, err := server.Start(ctx, server.Config{Cluster: cluster.Config{Domain: "nginx-metrics", Role: role.Worker, NodeName: "w1",
		BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal}})
	if err != nil {
		t.Fatal(err)
	}
	defer wrk.Kill()
	tel, err := telemetry.Setup("none", "gateway", io.Discard, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	obs, err := cluster.Join(ctx, cluster.Config{Domain: "nginx-metrics", Observer: true, NodeName: "gw", BindAddr: "127.0.0.1:0",
		Seeds: []string{wrk.Node().Self().Addr}, Profile: cluster.ProfileLocal})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	testutil.WaitFor(t, 10*time.Second, "the observer sees the worker serving", func() bool {
		m, ok := obs.View().Member("w1")
		return ok && m.Routable()
	})
	b, err := nginxlb.Start(ctx, nginxlb.Config{Bin: bin, Reads: gateway.Route{Node: obs, SubDomain: cluster.SubDomainWorker, Policy: lb.RoundRobin},
		MeterProvider: tel.Meter})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	rec := httptest.NewRecorder()
	tel.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, telemetry.MetricsPath, nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0.0
	for _, m := range fams["carbon_lb_nginx_applies_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == "ok" {
				ok += m.GetCounter().GetValue()
			}
		}
	}
	// Start returns once each of the two controllers (HTTP and gRPC) applied.
	if ok < 2 {
		t.Errorf("carbon_lb_nginx_applies_total{result=\"ok\"} = %v, want >= 2", ok)
	}
}
