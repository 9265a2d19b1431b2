// Package telemetry installs an OpenTelemetry SDK for the examples. The
// library packages import the OpenTelemetry API only; a program chooses
// the SDK and the exporter, as this package does behind the -otel flag.
package telemetry
