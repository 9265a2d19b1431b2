package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/carbonkit/carbon/cmd/carbon/internal/carboncli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := carboncli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
