package cluster

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentation = "github.com/carbonkit/carbon/cluster"

// observability holds the Node's OpenTelemetry instruments. Only the API
// is used: without an SDK installed by the application they are no-ops.
type observability struct {
	n         *Node
	tracer    trace.Tracer
	meter     metric.Meter
	events    metric.Int64Counter
	elections metric.Int64Counter
	messages  metric.Int64Counter
	rejects   metric.Int64Counter
	reg       metric.Registration
}

func newObservability(n *Node) *observability {
	mp, tp := n.cfg.MeterProvider, n.cfg.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	o := &observability{n: n, tracer: tp.Tracer(instrumentation), meter: mp.Meter(instrumentation)}
	o.events, _ = o.meter.Int64Counter("carbon.cluster.membership.events",
		metric.WithDescription("Membership events received from serf, by type."), metric.WithUnit("{event}"))
	o.elections, _ = o.meter.Int64Counter("carbon.cluster.elections",
		metric.WithDescription("Changes of this node's claim to be the active manager."), metric.WithUnit("{election}"))
	o.messages, _ = o.meter.Int64Counter("carbon.cluster.messages",
		metric.WithDescription("Cluster messages received, by name and whether they were dropped."), metric.WithUnit("{message}"))
	o.rejects, _ = o.meter.Int64Counter("carbon.cluster.foreign.rejected",
		metric.WithDescription("Merges refused because a member belongs to another domain."), metric.WithUnit("{member}"))
	return o
}

// register installs the observable gauges: members by domain, sub-domain,
// role, status, serving state and trust; the epoch and the active manager
// of each sub-domain; whether this node is writable; how many members lag
// the active manager's artifact revision.
func (o *observability) register() {
	members, _ := o.meter.Int64ObservableGauge("carbon.cluster.members",
		metric.WithDescription("Members this node sees, by domain, sub-domain, role (observer for every observer), status, serving state and trust."), metric.WithUnit("{member}"))
	epoch, _ := o.meter.Int64ObservableGauge("carbon.cluster.epoch",
		metric.WithDescription("Epoch of the active manager of each sub-domain, with its name."))
	writable, _ := o.meter.Int64ObservableGauge("carbon.cluster.writable",
		metric.WithDescription("1 when this node accepts writes."))
	lagging, _ := o.meter.Int64ObservableGauge("carbon.cluster.revision.lagging",
		metric.WithDescription("Members whose reported artifact revision is older than the newest an active manager reports (see Node.SetRevision)."), metric.WithUnit("{member}"))
	reg, err := o.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		v := o.n.View()
		type key struct{ sub, role, status, state, trust string }
		counts := map[key]int64{}
		for _, m := range v.members {
			r := m.Role.String()
			if m.Observer {
				r = "observer" // one that acts for the managers is no manager to count
			}
			counts[key{m.SubDomain, r, m.Status.String(), m.State.String(), m.Trust.String()}]++
		}
		for k, c := range counts {
			obs.ObserveInt64(members, c, metric.WithAttributes(
				attribute.String("carbon.domain", o.n.cfg.Domain), attribute.String("carbon.subdomain", k.sub),
				attribute.String("carbon.role", k.role), attribute.String("carbon.status", k.status),
				attribute.String("carbon.state", k.state), attribute.String("carbon.trust", k.trust)))
		}
		if ref, ok := managerRevision(v); ok {
			obs.ObserveInt64(lagging, int64(countLagging(v, ref)), metric.WithAttributes(attribute.String("carbon.domain", o.n.cfg.Domain)))
		}
		for sub, a := range v.actives {
			obs.ObserveInt64(epoch, int64(v.epochs[sub]), metric.WithAttributes(
				attribute.String("carbon.domain", o.n.cfg.Domain), attribute.String("carbon.subdomain", sub),
				attribute.String("carbon.active", a.Name)))
		}
		w := int64(0)
		if o.n.Writable() {
			w = 1
		}
		obs.ObserveInt64(writable, w, metric.WithAttributes(attribute.String("carbon.domain", o.n.cfg.Domain)))
		return nil
	}, members, epoch, writable, lagging)
	if err == nil {
		o.reg = reg
	}
}

func (o *observability) unregister() {
	if o.reg != nil {
		_ = o.reg.Unregister()
	}
}

func (o *observability) event(typ string, count int) {
	o.events.Add(context.Background(), int64(count), metric.WithAttributes(attribute.String("carbon.event", typ)))
}

func (o *observability) message(name string, dropped bool) {
	o.messages.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("carbon.message", name), attribute.Bool("carbon.dropped", dropped)))
}

func (o *observability) rejected() { o.rejects.Add(context.Background(), 1) }

// election records a change of this node's claim, with a span.
func (o *observability) election(sub string, from, to uint64) {
	_, span := o.tracer.Start(context.Background(), "cluster.election", trace.WithAttributes(
		attribute.String("carbon.subdomain", sub), attribute.Int64("carbon.epoch.from", int64(from)),
		attribute.Int64("carbon.epoch.to", int64(to))))
	span.End()
	o.elections.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("carbon.subdomain", sub), attribute.Bool("carbon.active", to != 0)))
}
