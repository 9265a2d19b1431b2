package clustertest_test

import (
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

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
