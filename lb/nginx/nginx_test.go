package nginx

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

// workerCluster starts three workers (w2 with weight 2), a fourth that is
// not serving yet, an observer running a controller, and Nginx.
type workerCluster struct {
	ng       *nginxProc
	obs      *cluster.Node
	c        *Controller
	nodes    map[string]*cluster.Node
	backends map[string]*backend
}

func startWorkers(t *testing.T) *workerCluster {
	t.Helper()
	ng := startNginx(t, "workers")
	wc := &workerCluster{ng: ng, nodes: map[string]*cluster.Node{}, backends: map[string]*backend{}}
	var seed *cluster.Node
	for _, name := range []string{"w1", "w2", "w3", "w4"} {
		b := startBackend(t, name)
		n := member(t, name, role.Worker, b, seed, func(c *cluster.Config) {
			if name == "w2" {
				c.Properties = map[string]string{"weight": "2"}
			}
			c.DeferServing = name == "w4"
		})
		if seed == nil {
			seed = n
		}
		wc.nodes[name], wc.backends[name] = n, b
	}
	wc.obs = observer(t, seed)
	c, err := New(wc.obs, Config{
		Upstreams: []UpstreamSpec{{Name: "workers", SubDomain: cluster.SubDomainWorker}},
		Writer:    ng.fileWriter(t, ""),
		Coalesce:  50 * time.Millisecond,
		Logger:    testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	wc.c = c
	runController(t, c)
	waitServers(t, c, "workers", "w1", "w2", "w3")
	ng.waitServing(t, "w1", "w2", "w3")
	return wc
}

func TestRequestsReachOnlyLiveServingWorkers(t *testing.T) {
	wc := startWorkers(t)
	conf, err := os.ReadFile(wc.ng.upstreams)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"upstream workers {", wc.backends["w2"].addr + " weight=2;", wc.backends["w1"].addr + "; # w1"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("rendered file lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(string(conf), wc.backends["w4"].addr) {
		t.Errorf("w4 is starting, not serving, yet it is in the upstream:\n%s", conf)
	}
	got := wc.ng.spread(t, 40)
	// Round robin with weights 1, 2, 1 over 40 requests: 10, 20, 10.
	if got["w1"] != 10 || got["w2"] != 20 || got["w3"] != 10 || len(got) != 3 {
		t.Errorf("requests by backend = %v, want w1:10 w2:20 w3:10", got)
	}

	// w4 becomes ready: it joins the upstream and gets requests.
	if err := wc.nodes["w4"].Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitServers(t, wc.c, "workers", "w1", "w2", "w3", "w4")
	wc.ng.waitServing(t, "w1", "w2", "w3", "w4")
	if got := wc.ng.spread(t, 50); got["w4"] != 10 {
		t.Errorf("after w4 is ready, requests by backend = %v, want w4:10", got)
	}
}

func TestCrashedWorkerLeavesUpstream(t *testing.T) {
	wc := startWorkers(t)
	if got := wc.ng.spread(t, 8); got["w3"] == 0 {
		t.Fatalf("w3 got no request before the crash: %v", got)
	}
	// Crash w3's membership but keep its HTTP server up: only the
	// controller can make Nginx stop sending to it (Nginx itself would
	// see a healthy backend).
	wc.nodes["w3"].Close()
	waitServers(t, wc.c, "workers", "w1", "w2")
	wc.ng.waitServing(t, "w1", "w2")
	hits := wc.backends["w3"].hits.Load()
	got := wc.ng.spread(t, 60)
	if n := wc.backends["w3"].hits.Load() - hits; n != 0 || got["w3"] != 0 {
		t.Errorf("crashed w3 still got %d requests after leaving the upstream (%v)", n, got)
	}
	if got["w1"] == 0 || got["w2"] == 0 {
		t.Errorf("live workers not all reached: %v", got)
	}
}

func TestDrainedWorkerLeavesUpstreamBeforeItStops(t *testing.T) {
	wc := startWorkers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wc.nodes["w1"].Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// Drain returned: the observer has seen w1 draining. Within the
	// coalescing delay plus a reload, w1 is out of the upstream, while it
	// is still a live member that has not left.
	waitServers(t, wc.c, "workers", "w2", "w3")
	wc.ng.waitServing(t, "w2", "w3")
	if m, ok := wc.obs.View().Member("w1"); !ok || m.Status != cluster.StatusAlive || m.State != cluster.Draining {
		t.Fatalf("w1 as the observer sees it = %+v, want alive and draining", m)
	}
	hits := wc.backends["w1"].hits.Load()
	wc.ng.spread(t, 40)
	if n := wc.backends["w1"].hits.Load() - hits; n != 0 {
		t.Errorf("drained w1 got %d new requests after leaving the upstream", n)
	}
	if err := wc.nodes["w1"].Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
}

func TestManagerWritesFollowFailover(t *testing.T) {
	ng := startNginx(t, "mgt")
	b1, b2 := startBackend(t, "m1"), startBackend(t, "m2")
	m1 := member(t, "m1", role.Manager, b1, nil, nil)
	// m1 alone elects itself; m2 joins it then.
	waitFor(t, 10*time.Second, "m1 to be active", func() bool { return m1.Writable() })
	m2 := member(t, "m2", role.Manager, b2, m1, nil)
	obs := observer(t, m1)
	c, err := New(obs, Config{
		Upstreams: []UpstreamSpec{{Name: "mgt", SubDomain: cluster.SubDomainManager, Zone: "64k"}},
		Writer:    ng.fileWriter(t, ""),
		Coalesce:  50 * time.Millisecond,
		Logger:    testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	var active, standby *cluster.Node
	waitFor(t, 10*time.Second, "the observer to see an active manager and a stand-by", func() bool {
		a, ok := obs.View().Active(cluster.SubDomainManager)
		if !ok || len(obs.View().Alive(cluster.SubDomainManager)) != 2 {
			return false
		}
		active, standby = m1, m2
		if a.Name == "m2" {
			active, standby = m2, m1
		}
		return active.Writable() && !standby.Writable()
	})
	want := []string{"m1", "m2(backup)"}
	if active == m2 {
		want = []string{"m1(backup)", "m2"}
	}
	waitServers(t, c, "mgt", want...)
	ng.waitServing(t, want...)
	conf, _ := os.ReadFile(ng.upstreams)
	if !strings.Contains(string(conf), " backup; # "+standby.Name()) || !strings.Contains(string(conf), "zone mgt 64k;") {
		t.Errorf("rendered file lacks the backup stand-by or the zone:\n%s", conf)
	}
	if got := ng.spread(t, 20); got[active.Name()] != 20 {
		t.Errorf("writes by manager = %v, want all 20 on the active %s", got, active.Name())
	}

	// The active crashes (its HTTP server stays up, so only the controller
	// can move the traffic); the stand-by takes over and the writes follow.
	active.Close()
	waitFor(t, 10*time.Second, "the stand-by to become active", func() bool { return standby.Writable() })
	waitServers(t, c, "mgt", standby.Name())
	ng.waitServing(t, standby.Name())
	if got := ng.spread(t, 20); got[standby.Name()] != 20 {
		t.Errorf("writes after failover = %v, want all 20 on the new active %s", got, standby.Name())
	}
}

func TestBrokenTemplateIsRefusedAndNginxKeepsServing(t *testing.T) {
	wc := startWorkers(t)
	good, err := os.ReadFile(wc.ng.upstreams)
	if err != nil {
		t.Fatal(err)
	}
	ups := wc.c.Upstreams()

	t.Run("parse error", func(t *testing.T) {
		_, err := NewFileWriter(FileConfig{Path: wc.ng.upstreams, Template: "upstream {{.Name"})
		if !errors.Is(err, ErrTemplate) {
			t.Fatalf("NewFileWriter with an unparsable template: err = %v, want ErrTemplate", err)
		}
	})
	t.Run("render error", func(t *testing.T) {
		w := wc.ng.fileWriter(t, "{{range .Upstreams}}{{.NoSuchField}}{{end}}")
		if err := w.Apply(context.Background(), ups); !errors.Is(err, ErrTemplate) {
			t.Fatalf("Apply: err = %v, want ErrTemplate", err)
		}
	})
	t.Run("refused by nginx -t", func(t *testing.T) {
		w := wc.ng.fileWriter(t, "{{range .Upstreams}}upstream {{.Name}} { no_such_directive; }{{end}}")
		err := w.Apply(context.Background(), ups)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no_such_directive") {
			t.Fatalf("Apply: err = %v, want ErrInvalid naming the bad directive", err)
		}
	})
	t.Run("controller reports it", func(t *testing.T) {
		c, err := New(wc.obs, Config{
			Upstreams: []UpstreamSpec{{Name: "workers", SubDomain: cluster.SubDomainWorker}},
			Writer:    wc.ng.fileWriter(t, "{{range .Upstreams}}upstream {{.Name}} { server ; }{{end}}"),
			Coalesce:  20 * time.Millisecond,
			Logger:    testLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		runController(t, c)
		waitFor(t, 10*time.Second, "the failed apply to be reported", func() bool { return c.Stats().Failures > 0 })
		st := c.Stats()
		if !errors.Is(st.LastError, ErrInvalid) || st.Applies != 0 || c.Upstreams() != nil {
			t.Errorf("stats = %+v, upstreams %v; want LastError ErrInvalid, no apply", st, c.Upstreams())
		}
	})

	// Whatever was refused, the file and the running Nginx are unchanged.
	now, err := os.ReadFile(wc.ng.upstreams)
	if err != nil || string(now) != string(good) {
		t.Errorf("upstream file changed by a refused config (err %v):\n%s", err, now)
	}
	if got := wc.ng.spread(t, 8); got["w1"] == 0 || got["w2"] == 0 || got["w3"] == 0 {
		t.Errorf("nginx no longer serves all workers after the refused configs: %v", got)
	}
}
