package nginx

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

// timedWriter measures the Applies of the writer it wraps.
type timedWriter struct {
	Writer
	n     atomic.Int64
	total atomic.Int64 // ns
}

func (w *timedWriter) Apply(ctx context.Context, ups []Upstream) error {
	start := time.Now()
	err := w.Writer.Apply(ctx, ups)
	w.n.Add(1)
	w.total.Add(int64(time.Since(start)))
	return err
}

// BenchmarkFailureToNginx measures, per crashed worker, the time from the
// observer's Node marking it failed to the last request Nginx sent it
// (ms-failed-to-nginx), against the controller's own part: the end of its
// Apply (ms-failed-to-applied) and the mean duration of one Apply, i.e.
// "nginx -t" plus "nginx -s reload" (ms-apply, the baseline). The crashed
// worker's HTTP server stays up, so only the controller can stop the
// traffic. Run with -benchtime=Nx: each op joins a new worker.
func BenchmarkFailureToNginx(b *testing.B) {
	ng := startNginx(b, "workers")
	w0 := member(b, "w0", role.Worker, startBackend(b, "w0"), nil, nil)
	obs := observer(b, w0)
	tw := &timedWriter{Writer: ng.fileWriter(b, "")}
	c, err := New(obs, Config{Upstreams: []UpstreamSpec{{Name: "workers", SubDomain: "worker"}}, Writer: tw, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	runController(b, c)
	var toNginx, toApplied time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		name := fmt.Sprintf("victim%d", i)
		vb := startBackend(b, name)
		victim := member(b, name, role.Worker, vb, w0, nil)
		waitServers(b, c, "workers", name, "w0")
		ng.waitServing(b, name, "w0")

		ctx, cancel := context.WithCancel(context.Background())
		failedAt := make(chan time.Time, 1)
		go func() {
			for v := range obs.Watch(ctx) {
				if m, ok := v.Member(name); ok && m.Status == cluster.StatusFailed {
					failedAt <- time.Now()
					return
				}
			}
		}()
		var (
			mu      sync.Mutex
			lastHit time.Time
			stop    atomic.Bool
			wg      sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if got, err := ng.get(); err == nil && got == name {
					mu.Lock()
					lastHit = time.Now()
					mu.Unlock()
				}
			}
		}()
		b.StartTimer()
		victim.Close()
		t0 := <-failedAt
		waitServers(b, c, "workers", "w0")
		ng.waitServing(b, "w0")
		b.StopTimer()
		applied := c.Stats().LastApply
		for range 20 {
			if _, err := ng.get(); err != nil {
				b.Fatal(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		cancel()
		mu.Lock()
		toNginx += max(lastHit.Sub(t0), 0)
		mu.Unlock()
		toApplied += applied.Sub(t0)
		b.StartTimer()
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	apply := float64(tw.total.Load()) / float64(time.Millisecond) / float64(max(tw.n.Load(), 1))
	b.ReportMetric(ms(toNginx), "ms-failed-to-nginx")
	b.ReportMetric(ms(toApplied), "ms-failed-to-applied")
	b.ReportMetric(apply, "ms-apply")
	b.ReportMetric(ms(toNginx)/apply, "x-apply")
}

var benchRun atomic.Int64

// BenchmarkReloads20Changes makes 20 members ready, one every 50 ms (20
// membership changes in one second), and counts Nginx reloads with the
// default 200 ms coalescing, against the number of distinct upstream
// changes the controller saw (what it would reload without coalescing).
func BenchmarkReloads20Changes(b *testing.B) {
	const n = 20
	var reloads, changes uint64
	for range b.N {
		i := benchRun.Add(1)
		b.StopTimer()
		ng := startNginx(b, "workers")
		first := member(b, fmt.Sprintf("b%d-w0", i), role.Worker, startBackend(b, "w0"), nil, nil)
		var late []*cluster.Node
		want := []string{first.Name()}
		for j := 1; j <= n; j++ {
			name := fmt.Sprintf("b%d-w%02d", i, j)
			late = append(late, member(b, name, role.Worker, startBackend(b, name), first, func(c *cluster.Config) { c.DeferServing = true }))
			want = append(want, name)
		}
		obs := observer(b, first)
		waitFor(b, 30*time.Second, "the observer to see every member", func() bool { return len(obs.View().Alive("")) == n+1 })
		c, err := New(obs, Config{Upstreams: []UpstreamSpec{{Name: "workers", SubDomain: "worker"}}, Writer: ng.fileWriter(b, ""), Logger: testLogger()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		waitServers(b, c, "workers", first.Name())
		before := c.Stats()
		b.StartTimer()
		tick := time.NewTicker(50 * time.Millisecond)
		for _, m := range late {
			<-tick.C
			if err := m.Ready(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		// Beyond 10 s, a lost tag update would be repaired by serf's
		// push/pull (30 s in the LAN profile).
		waitServersWithin(b, 40*time.Second, c, "workers", want...)
		b.StopTimer()
		st := c.Stats()
		reloads += st.Applies - before.Applies
		changes += st.Changes - before.Changes
		cancel()
		<-done
		obs.Close()
		for _, m := range late {
			m.Close()
		}
		first.Close()
	}
	b.ReportMetric(float64(reloads)/float64(b.N), "reloads/20changes")
	b.ReportMetric(float64(changes)/float64(b.N), "changes-seen")
	b.ReportMetric(float64(reloads)/float64(max(changes, 1)), "reloads/change")
}
