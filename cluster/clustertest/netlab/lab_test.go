package netlab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	bins      Binaries
	buildErr  error
)

// binaries builds the example worker and manager once per test binary.
func binaries(t *testing.T) Binaries {
	t.Helper()
	if err := Require(); err != nil {
		t.Skip(err)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netlab-bin-")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bins, buildErr = Build(ctx, dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

// seed is CARBON_NETLAB_SEED when set (to replay a run), else the clock.
func seed(t *testing.T) int64 {
	if s := os.Getenv("CARBON_NETLAB_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CARBON_NETLAB_SEED: want an integer, got %q", s)
		}
		return v
	}
	return time.Now().UnixNano()
}

// runLab runs one pattern and fails the test on a broken promise the
// pattern makes.
func runLab(t *testing.T, o Options) RunResult {
	t.Helper()
	o.Bin = binaries(t)
	o.Dir = t.TempDir()
	o.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Logf("pattern %d seed %d (replay with CARBON_NETLAB_SEED=%d)", o.Pattern, o.Seed, o.Seed)
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	if !res.NodeRecords {
		t.Log("netlab: the example servers have no -history flag: their own records are not checked, only what the clients saw")
	}
	t.Log("\n" + res.Summary.String())
	for _, v := range res.Report.Violations {
		t.Errorf("%s (logs: %s)", v, o.Dir)
	}
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// TestPatterns runs patterns 1, 2 and 3 as real processes with every kind
// of fault once, in parallel (each in namespaces of its own).
func TestPatterns(t *testing.T) {
	binaries(t)
	for p := 1; p <= 3; p++ {
		t.Run(fmt.Sprintf("pattern%d", p), func(t *testing.T) {
			t.Parallel()
			runLab(t, Options{Pattern: p, Seed: seed(t) + int64(p)})
		})
	}
}
