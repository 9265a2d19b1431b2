package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ErrExporter is returned for an exporter name Setup does not know.
var ErrExporter = errors.New("telemetry: unknown exporter (want none or stdout)")

// MetricsPath is where the example servers and the gateway serve
// Metrics.
const MetricsPath = "/metrics"

// Providers are the meter and tracer providers to pass to cluster.Config,
// the role Guard and lb, with the function that flushes and stops them.
type Providers struct {
	Meter  metric.MeterProvider
	Tracer trace.TracerProvider
	// Metrics serves every instrument of Meter in the Prometheus text
	// format, with the Go runtime's and the process's own collectors.
	Metrics  http.Handler
	Shutdown func(context.Context) error
}

// Setup returns providers whose metrics are always readable by Prometheus
// through Providers.Metrics (a pull exporter costs nothing until scraped),
// and, for exporter "stdout", also written every interval as JSON to w,
// with spans as they end. Exporter "none" (or "") exports no spans.
//
// The Prometheus registry is the providers' own, not the global default
// one: two Setups in one process (tests run several servers) never
// collide.
func Setup(exporter, service string, w io.Writer, interval time.Duration) (Providers, error) {
	switch exporter {
	case "", "none", "stdout":
	default:
		return Providers{}, fmt.Errorf("%w: %q", ErrExporter, exporter)
	}
	res := resource.NewSchemaless(semconv.ServiceName(service))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Classic Prometheus names, stated rather than left to the exporter's
	// default, which it says will change: dots become underscores, units
	// and _total are suffixed ("carbon.depsync.sent" in "By" is
	// carbon_depsync_sent_bytes_total).
	pe, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		return Providers{}, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(pe)}
	var tp trace.TracerProvider = tracenoop.NewTracerProvider()
	shutdownTracer := func(context.Context) error { return nil }
	if exporter == "stdout" {
		me, err := stdoutmetric.New(stdoutmetric.WithWriter(w))
		if err != nil {
			return Providers{}, fmt.Errorf("telemetry: metric exporter: %w", err)
		}
		te, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return Providers{}, fmt.Errorf("telemetry: trace exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(interval))))
		stp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(te))
		tp, shutdownTracer = stp, stp.Shutdown
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	return Providers{
		Meter: mp, Tracer: tp,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Shutdown: func(ctx context.Context) error {
			return errors.Join(mp.Shutdown(ctx), shutdownTracer(ctx))
		},
	}, nil
}
