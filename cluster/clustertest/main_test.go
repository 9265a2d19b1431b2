package clustertest_test

import (
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's timers (suspicion, indirect probes) outlive its
	// Shutdown by up to a probe timeout; give them time on a loaded host.
	goleak.VerifyTestMain(m, goleak.MaxRetryAttempts(100))
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
