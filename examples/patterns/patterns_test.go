package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/examples/internal/patterns"
	"github.com/carbonkit/carbon/internal/leakcheck"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

// wantSteps is how many steps each pattern's tour must take: pattern 1 has
// no stand-by manager, hence no fail-over step.
var wantSteps = map[int]int{1: 5, 2: 6, 3: 6}

// TestTour runs the tour of each pattern as the README's command does, and
// fails on any step that does not hold.
func TestTour(t *testing.T) {
	for _, p := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("pattern%d", p), func(t *testing.T) {
			tour(t, patterns.Options{Pattern: p})
		})
	}
}

// TestTourNginx runs pattern 3 with real Nginx balancers (two, one per
// sub-domain), and pattern 2 with one shared Nginx. Skipped without nginx.
func TestTourNginx(t *testing.T) {
	bin, err := findNginx("")
	if err != nil {
		t.Skip(err)
	}
	for _, p := range []int{2, 3} {
		t.Run(fmt.Sprintf("pattern%d", p), func(t *testing.T) {
			tour(t, patterns.Options{Pattern: p, Nginx: bin})
		})
	}
}

func tour(t *testing.T, opts patterns.Options) {
	t.Helper()
	var progress bytes.Buffer
	opts.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	report, err := patterns.Run(ctx, opts)
	t.Logf("pattern %d tour:\n%s", opts.Pattern, progress.String())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if len(report.Steps) != wantSteps[opts.Pattern] {
		t.Errorf("took %d steps, want %d", len(report.Steps), wantSteps[opts.Pattern])
	}
	for _, s := range report.Steps {
		if !s.Held {
			t.Errorf("step did not hold: %s", s)
		}
	}
	if !report.Held() && !t.Failed() {
		t.Error("report says a step did not hold")
	}
}

func TestBadPattern(t *testing.T) {
	_, err := patterns.Run(context.Background(), patterns.Options{Pattern: 4})
	if !errors.Is(err, patterns.ErrPattern) {
		t.Fatalf("pattern 4: %v, want ErrPattern", err)
	}
}

// TestCommand builds and runs the command as the README says, without
// holding, and checks its exit status and that it prints the verdict.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := t.TempDir() + "/patterns"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-pattern", "3", "-hold=false").CombinedOutput()
	if err != nil {
		t.Fatalf("patterns -pattern 3: %v\n%s", err, out)
	}
	for _, want := range []string{"6/6 steps held: every step held", "[held]     the active manager is killed and the stand-by takes over"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.CommandContext(ctx, bin, "-pattern", "7", "-hold=false").CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 || !bytes.Contains(out, []byte("pattern must be 1, 2 or 3")) {
		t.Errorf("patterns -pattern 7: %v\n%s", err, out)
	}
}
