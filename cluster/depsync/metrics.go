package depsync

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names.
const (
	// MetricRevisionEpoch and MetricRevisionSeq are gauges of the current
	// revision of a node (attribute "node").
	MetricRevisionEpoch = "carbon.depsync.revision.epoch"
	MetricRevisionSeq   = "carbon.depsync.revision.seq"
	// MetricDeployDuration is a histogram of the time a follower took from
	// asking the manager to having switched (and run the hook), in seconds.
	MetricDeployDuration = "carbon.depsync.deploy.duration"
	// MetricBytesSent counts the blob bytes a node served, in bytes (the
	// unit is not in the name, as OpenTelemetry's conventions want; the
	// Prometheus exporter appends it: carbon_depsync_sent_bytes_total).
	MetricBytesSent = "carbon.depsync.sent"
	// MetricBytesReceived counts the blob bytes a node received, by
	// "source" (member name) and "source.kind" ("manager" or "peer").
	MetricBytesReceived = "carbon.depsync.received"
)

type instruments struct {
	epoch, seq     metric.Int64Gauge
	deployDuration metric.Float64Histogram
	sent, received metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider) (instruments, error) {
	m := mp.Meter("github.com/carbonkit/carbon/cluster/depsync")
	var in instruments
	var err error
	if in.epoch, err = m.Int64Gauge(MetricRevisionEpoch, metric.WithDescription("Epoch of the node's current revision.")); err != nil {
		return in, err
	}
	if in.seq, err = m.Int64Gauge(MetricRevisionSeq, metric.WithDescription("Sequence number of the node's current revision.")); err != nil {
		return in, err
	}
	if in.deployDuration, err = m.Float64Histogram(MetricDeployDuration, metric.WithUnit("s"), metric.WithDescription("Time from asking the manager to having switched to a new revision.")); err != nil {
		return in, err
	}
	if in.sent, err = m.Int64Counter(MetricBytesSent, metric.WithUnit("By"), metric.WithDescription("Blob bytes served to peers.")); err != nil {
		return in, err
	}
	if in.received, err = m.Int64Counter(MetricBytesReceived, metric.WithUnit("By"), metric.WithDescription("Blob bytes received, by source.")); err != nil {
		return in, err
	}
	return in, nil
}

func (in instruments) revision(ctx context.Context, node string, r Revision) {
	a := metric.WithAttributes(attribute.String("node", node))
	in.epoch.Record(ctx, int64(r.Epoch), a)
	in.seq.Record(ctx, int64(r.Seq), a)
}

func (in instruments) deployed(ctx context.Context, d time.Duration, r Revision) {
	in.deployDuration.Record(ctx, d.Seconds())
}
