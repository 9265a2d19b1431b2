package nginx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/carbonkit/carbon/cluster"
)

const instrumentation = "github.com/carbonkit/carbon/lb/nginx"

// ErrRunning is returned by [Controller.Run] when the controller already runs.
var ErrRunning = errors.New("nginx: controller already running")

// UpstreamSpec names one upstream to keep: the members of SubDomain,
// rendered as "upstream Name".
type UpstreamSpec struct {
	// Name of the upstream block: letters, digits, '_', '-', '.'. Required.
	Name string
	// SubDomain whose members make the upstream. Required.
	SubDomain string
	// Zone, when set, is the size of a shared memory zone for the upstream
	// ("64k"), which Nginx Plus's API needs and which shares counters
	// between workers in open-source Nginx.
	Zone string
}

// Config configures a [Controller]. Zero values mean the defaults
// documented on each field.
type Config struct {
	// Upstreams to keep, one per sub-domain. At least one; names unique.
	Upstreams []UpstreamSpec
	// Writer puts the upstreams into effect: a [FileWriter] for open-source
	// Nginx, a [PlusWriter] for Nginx Plus. Required.
	Writer Writer
	// Endpoint is the name of the member endpoint servers point at.
	// Default "http".
	Endpoint string
	// WeightProperty is the member property read as the server's weight
	// (an integer from 1 to 1000). Default "weight"; missing or invalid
	// means 1 (an invalid value is logged).
	WeightProperty string
	// Coalesce is the least time between two applies: a change after a
	// quiet period is applied at once, and the changes that follow within
	// Coalesce are applied together at its end. Default 200 ms.
	Coalesce time.Duration
	// ApplyTimeout bounds one Apply. Default 10 s.
	ApplyTimeout time.Duration
	// MaxRetryDelay caps the backoff between retries of a failed apply
	// (which start at Coalesce and double). Default 30 s.
	MaxRetryDelay time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MeterProvider defaults to the global OpenTelemetry provider.
	MeterProvider metric.MeterProvider
}

// Stats counts what a [Controller] did.
type Stats struct {
	// Views is the number of membership views received.
	Views uint64
	// Changes is the number of views that changed the upstreams wanted.
	Changes uint64
	// Applies is the number of successful applies (for a [FileWriter], of
	// reloads of Nginx).
	Applies uint64
	// Failures is the number of failed applies.
	Failures uint64
	// LastError is the error of the last apply, nil if it succeeded.
	LastError error
	// LastApply is when the last successful apply finished.
	LastApply time.Time
}

// Controller keeps Nginx upstreams in sync with a domain's membership, as
// one [cluster.Node] (usually an observer) sees it. Create it with [New]
// and start it with [Controller.Run]; its other methods are safe for
// concurrent use.
type Controller struct {
	node    *cluster.Node
	cfg     Config
	b       builder
	log     *slog.Logger
	running atomic.Bool

	applies metric.Int64Counter
	attrs   metric.MeasurementOption

	mu      sync.Mutex
	stats   Stats
	applied []Upstream
	notify  chan struct{}
}

// New checks cfg and returns a Controller for n. The error wraps
// [ErrConfig] and names the field.
func New(n *cluster.Node, cfg Config) (*Controller, error) {
	if n == nil {
		return nil, fmt.Errorf("%w: nil node", ErrConfig)
	}
	if cfg.Writer == nil {
		return nil, fmt.Errorf("%w: Config.Writer is nil", ErrConfig)
	}
	if len(cfg.Upstreams) == 0 {
		return nil, fmt.Errorf("%w: Config.Upstreams is empty", ErrConfig)
	}
	seen := map[string]bool{}
	for i, u := range cfg.Upstreams {
		switch {
		case !validName(u.Name):
			return nil, fmt.Errorf("%w: Config.Upstreams[%d].Name %q: want 1 to 64 letters, digits, '_', '-' or '.'", ErrConfig, i, u.Name)
		case seen[u.Name]:
			return nil, fmt.Errorf("%w: Config.Upstreams[%d].Name %q is used twice", ErrConfig, i, u.Name)
		case u.SubDomain == "":
			return nil, fmt.Errorf("%w: Config.Upstreams[%d].SubDomain is empty", ErrConfig, i)
		case !validZone(u.Zone):
			return nil, fmt.Errorf("%w: Config.Upstreams[%d].Zone %q: want a size such as 64k or 1m", ErrConfig, i, u.Zone)
		}
		seen[u.Name] = true
	}
	if cfg.Coalesce < 0 || cfg.ApplyTimeout < 0 || cfg.MaxRetryDelay < 0 {
		return nil, fmt.Errorf("%w: Config.Coalesce, ApplyTimeout and MaxRetryDelay must not be negative", ErrConfig)
	}
	cfg.Upstreams = append([]UpstreamSpec(nil), cfg.Upstreams...)
	if cfg.Endpoint == "" {
		cfg.Endpoint = "http"
	}
	if cfg.WeightProperty == "" {
		cfg.WeightProperty = "weight"
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = 200 * time.Millisecond
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.MaxRetryDelay == 0 {
		cfg.MaxRetryDelay = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	c := &Controller{node: n, cfg: cfg, log: cfg.Logger.With("component", "lb/nginx"), notify: make(chan struct{})}
	c.b = builder{specs: cfg.Upstreams, endpoint: cfg.Endpoint, weight: cfg.WeightProperty, warn: c.log.Warn}
	c.applies, _ = cfg.MeterProvider.Meter(instrumentation).Int64Counter("carbon.lb.nginx.applies",
		metric.WithDescription("Applies of upstreams to Nginx (reloads), by result."), metric.WithUnit("{apply}"))
	c.attrs = metric.WithAttributes(attribute.String("carbon.domain", n.Domain()))
	return c, nil
}

// Run keeps the upstreams in sync until ctx ends (it returns nil) or the
// node closes (it returns [cluster.ErrClosed]). It applies the current
// membership at once, then every change, coalesced as [Config.Coalesce]
// says. A failed apply is logged, counted in [Stats], and retried with
// backoff, and again on the next change; the balancer keeps its previous
// upstreams meanwhile.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	views := c.node.Watch(ctx)

	var (
		want      []Upstream
		prev      []Upstream
		pending   bool
		have      []Upstream
		haveAny   bool
		failures  int
		lastApply time.Time
		timer     = time.NewTimer(time.Hour)
		timerOn   bool
	)
	timer.Stop()
	defer timer.Stop()
	arm := func(d time.Duration) {
		if timerOn {
			return
		}
		timer.Reset(max(d, 0))
		timerOn = true
	}
	for {
		select {
		case v, ok := <-views:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return cluster.ErrClosed
			}
			ups := c.b.build(v)
			changed := !equalUpstreams(ups, prev) || prev == nil
			prev = ups
			c.mu.Lock()
			c.stats.Views++
			if changed {
				c.stats.Changes++
			}
			c.mu.Unlock()
			want = ups
			if haveAny && failures == 0 && equalUpstreams(want, have) {
				pending = false // back to what is applied: nothing to do
				continue
			}
			pending = true
			if changed && failures > 0 && timerOn {
				// A change may cure the failure: retry now rather than
				// at the end of the backoff.
				timer.Stop() // Go 1.23+: no stale tick is delivered after Stop
				timerOn = false
			}
			arm(time.Until(lastApply.Add(c.cfg.Coalesce)))
		case <-timer.C:
			timerOn = false
			if !pending {
				continue
			}
			actx, acancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
			err := c.cfg.Writer.Apply(actx, want)
			acancel()
			lastApply = time.Now()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				failures++
				delay := min(c.cfg.Coalesce<<min(failures-1, 16), c.cfg.MaxRetryDelay)
				c.applies.Add(ctx, 1, c.attrs, metric.WithAttributes(attribute.String("result", "error")))
				c.log.Error("nginx: apply failed; the balancer keeps its previous upstreams",
					"err", err, "failures", failures, "retry_in", delay)
				c.record(nil, err)
				arm(delay)
				continue
			}
			failures = 0
			have, haveAny, pending = want, true, false
			c.applies.Add(ctx, 1, c.attrs, metric.WithAttributes(attribute.String("result", "ok")))
			c.log.Debug("nginx: upstreams applied", "upstreams", summary(want))
			c.record(want, nil)
		case <-ctx.Done():
			return nil
		}
	}
}

// record updates the stats after an apply and wakes Applied's waiters.
func (c *Controller) record(ups []Upstream, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.LastError = err
	if err != nil {
		c.stats.Failures++
	} else {
		c.stats.Applies++
		c.stats.LastApply = time.Now()
		c.applied = cloneUpstreams(ups)
	}
	close(c.notify)
	c.notify = make(chan struct{})
}

// Stats returns what the controller has done so far.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Upstreams returns the upstreams last applied successfully (nil before
// the first), a copy the caller may keep.
func (c *Controller) Upstreams() []Upstream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == nil {
		return nil
	}
	return cloneUpstreams(c.applied)
}

// Applied returns a channel closed at the next apply, successful or not.
// Use it to wait for a change without polling.
func (c *Controller) Applied() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notify
}

// summary is a short log form of ups.
func summary(ups []Upstream) string {
	var w []byte
	for _, u := range ups {
		w = fmt.Appendf(w, "%s[", u.Name)
		for i, s := range u.Servers {
			if i > 0 {
				w = append(w, ' ')
			}
			w = append(w, s.Name...)
			if s.Backup {
				w = append(w, "(backup)"...)
			}
		}
		w = append(w, "] "...)
	}
	return string(w)
}
