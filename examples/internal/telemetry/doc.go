// Package telemetry installs an OpenTelemetry SDK for the examples. The
// library packages import the OpenTelemetry API only; a program chooses
// the SDK and the exporters, as this package does: every program's
// metrics are readable by Prometheus ([Providers.Metrics], served at
// [MetricsPath] by the example servers and the gateway), and the -otel
// flag adds stdout for metrics and spans.
package telemetry
