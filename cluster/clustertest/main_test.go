package clustertest_test

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster/clustertest"
)

// TestMain checks for leaks as goleak.VerifyTestMain does, with the longer
// patience of clustertest.FindLeaks.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := clustertest.FindLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func findLeaks(opts ...goleak.Option) error { return clustertest.FindLeaks(opts...) }

// soak reports whether the long versions of the fault suite run
// (CARBON_SOAK=1).
func soak() bool { return os.Getenv("CARBON_SOAK") != "" }

// logger is nil (discard) unless CARBON_TEST_LOG is set.
func logger() *slog.Logger {
	if os.Getenv("CARBON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}
