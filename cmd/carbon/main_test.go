package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cmd/carbon/internal/carboncli"
	"github.com/carbonkit/carbon/internal/leakcheck"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

// TestBinary builds carbon and runs it as a process against a live node:
// the exit status a script sees is the one Main returns.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "carbon")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mgr, err := cluster.Join(ctx, cluster.Config{Domain: "bin", Role: role.Manager, NodeName: "mgr", BindAddr: "127.0.0.1:0",
		Profile: cluster.ProfileLocal, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	testutil.WaitFor(t, 10*time.Second, "an active manager", func() bool { _, ok := mgr.Active("mgt"); return ok })

	run := func(env []string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, out.String(), errb.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errb.String()
		}
		t.Fatal(err)
		return 0, "", ""
	}
	// The flags come from CARBON_* as for the servers.
	env := []string{"CARBON_DOMAIN=bin", "CARBON_SEEDS=" + mgr.Self().Addr, "CARBON_PROFILE=local"}
	code, out, errs := run(env, "members", "-json")
	var ms []cluster.MemberStatus
	if code != carboncli.ExitOK || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 1 || ms[0].Name != "mgr" {
		t.Errorf("carbon members -json: exit %d, %q, stderr %q", code, out, errs)
	}
	if code, _, errs := run(env, "-bogus", "members"); code != carboncli.ExitUsage || !strings.Contains(errs, "-bogus") {
		t.Errorf("carbon -bogus: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := run(env, "-manager", "drain", "ghost"); code != carboncli.ExitNotFound || !strings.Contains(errs, "ghost") {
		t.Errorf("carbon drain ghost: exit %d, stderr %q", code, errs)
	}
}
