package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/carbonkit/carbon/examples/internal/patterns"
	"github.com/carbonkit/carbon/examples/internal/telemetry"
)

func main() {
	os.Exit(run())
}

func run() int {
	pattern := flag.Int("pattern", 3, "deployment pattern to run: 1, 2 or 3")
	useNginx := flag.Bool("nginx", false, "use real Nginx instances as the balancers instead of in-process lb gateways")
	nginxBin := flag.String("nginx-bin", "", "nginx binary (default: nginx in PATH, or /usr/sbin/nginx)")
	hold := flag.Bool("hold", true, "keep the topology running after the tour until Ctrl-C")
	logLevel := flag.String("log", "off", "node logs to stderr: off, error, warn, info or debug")
	otelExp := flag.String("otel", "none", "OpenTelemetry exporter: none or stdout")
	flag.Parse()

	logger, err := newLogger(*logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tel, err := telemetry.Setup(*otelExp, fmt.Sprintf("carbon-pattern-%d", *pattern), os.Stderr, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer tel.Shutdown(context.Background())

	opts := patterns.Options{Pattern: *pattern, Logger: logger, Progress: os.Stdout,
		MeterProvider: tel.Meter, TracerProvider: tel.Tracer}
	if *useNginx {
		if opts.Nginx, err = findNginx(*nginxBin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	begin := time.Now()
	t, err := patterns.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer t.Close()
	t.Print(os.Stdout)
	fmt.Printf("started in %s\n\ntour:\n", time.Since(begin).Round(time.Millisecond))
	report := t.Tour(ctx)
	for _, n := range report.Notes {
		fmt.Println("  note:", n)
	}
	held := 0
	for _, s := range report.Steps {
		if s.Held {
			held++
		}
	}
	verdict := "every step held"
	if !report.Held() {
		verdict = "SOME STEPS DID NOT HOLD"
	}
	fmt.Printf("\n%d/%d steps held: %s\n", held, len(report.Steps), verdict)
	if *hold && ctx.Err() == nil {
		fmt.Println("\nstatus pages (they refresh every 2 s; add ?format=json for JSON):")
		for _, u := range t.StatusURLs() {
			fmt.Println("  " + u)
		}
		fmt.Println("\nrunning; Ctrl-C to stop")
		<-ctx.Done()
		fmt.Println("stopping")
	}
	if !report.Held() {
		return 1
	}
	return 0
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	switch level {
	case "off", "":
		return slog.New(slog.NewTextHandler(io.Discard, nil)), nil
	default:
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("-log: %w", err)
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func findNginx(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("-nginx: no nginx binary in PATH or /usr/sbin (install Debian's nginx package, or pass -nginx-bin)")
}
