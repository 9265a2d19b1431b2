package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ErrExporter is returned for an exporter name Setup does not know.
var ErrExporter = errors.New("telemetry: unknown exporter (want none or stdout)")

// Providers are the meter and tracer providers to pass to cluster.Config,
// the role Guard and lb, with the function that flushes and stops them.
type Providers struct {
	Meter    metric.MeterProvider
	Tracer   trace.TracerProvider
	Shutdown func(context.Context) error
}

// Setup returns providers for exporter "none" (no-ops) or "stdout"
// (metrics every interval and spans as they end, as JSON, to w).
func Setup(exporter, service string, w io.Writer, interval time.Duration) (Providers, error) {
	switch exporter {
	case "", "none":
		return Providers{Meter: noop.NewMeterProvider(), Tracer: tracenoop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}, nil
	case "stdout":
	default:
		return Providers{}, fmt.Errorf("%w: %q", ErrExporter, exporter)
	}
	res := resource.NewSchemaless(semconv.ServiceName(service))
	me, err := stdoutmetric.New(stdoutmetric.WithWriter(w))
	if err != nil {
		return Providers{}, fmt.Errorf("telemetry: metric exporter: %w", err)
	}
	te, err := stdouttrace.New(stdouttrace.WithWriter(w))
	if err != nil {
		return Providers{}, fmt.Errorf("telemetry: trace exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(interval))))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(te))
	return Providers{Meter: mp, Tracer: tp, Shutdown: func(ctx context.Context) error {
		return errors.Join(mp.Shutdown(ctx), tp.Shutdown(ctx))
	}}, nil
}
