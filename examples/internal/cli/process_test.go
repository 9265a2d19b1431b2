package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/testutil"
)

// The example binaries, built once per test binary.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "carbon-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/", "../../manager", "../../worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestJoinErrorsExit1: a Join error (bad key, port in use, a seed of
// another domain) ends the binary with status 1 and the SDK's message on
// stderr, never a panic.
func TestJoinErrorsExit1(t *testing.T) {
	mgr := binary(t, "manager")
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tcpBusy, err := net.Listen("tcp", busy.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcpBusy.Close()
	other := startProc(t, mgr, "-domain", "other.test", "-name", "o1", "-bind", "127.0.0.1:0", "-profile", "local")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad key", []string{"-key", "c2hvcnQ="}, "Key: got 5 bytes"},
		{"port in use", []string{"-bind", busy.LocalAddr().String()}, "BindAddr"},
		{"seed of another domain", []string{"-seeds", other.gossip}, "belongs to domain \"other.test\""},
	} {
		args := append([]string{"-domain", "errors.test", "-name", "m1", "-bind", "127.0.0.1:0", "-profile", "local", "-log", "error"}, c.args...)
		cmd := exec.Command(mgr, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 1 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "panic") {
			t.Errorf("%s: exit %d (%v), stderr:\n%s\nwant exit 1 and %q, no panic", c.name, code, err, stderr.String(), c.want)
		}
	}
}

// proc is a running example binary.
type proc struct {
	cmd          *exec.Cmd
	gossip, http string
}

var serving = regexp.MustCompile(`serving in \S+: grpc \S+, http http://(\S+) `)

// startProc starts a binary and waits for its "serving" line; its gossip
// address comes from the status page.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				lines <- m[1]
			}
		}
	}()
	p := &proc{cmd: cmd}
	select {
	case p.http = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s %v: no serving line", bin, args)
	}
	st, err := status(p.http, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Domains {
		for _, sd := range d.SubDomains {
			for _, m := range sd.Members {
				if m.Name == d.Self {
					p.gossip = m.Addr
				}
			}
		}
	}
	return p
}

// stopped reports whether the process is stopped by a signal (state T in
// /proc/PID/stat).
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'T'
}

func status(addr string, timeout time.Duration) (cluster.StatusReport, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	var st cluster.StatusReport
	resp, err := c.Get("http://" + addr + "/status?format=json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func writable(addr string) (bool, error) {
	st, err := status(addr, 200*time.Millisecond)
	if err != nil || len(st.Domains) == 0 {
		return false, err
	}
	return st.Domains[0].Writable, nil
}

// post deploys an artifact on addr directly and returns the status code.
func post(ctx context.Context, addr, name string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/artifacts", strings.NewReader(`{"name":"`+name+`","version":"1"}`))
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestFrozenActiveAcknowledgesNothing: the active manager (a real process)
// is frozen with SIGSTOP past the failover time, then resumed. The
// stand-by takes over; a write queued to the frozen manager, and a write
// sent to it after it resumes, are not acknowledged (no 201); and the two
// status pages never both say writable once the stand-by took over.
func TestFrozenActiveAcknowledgesNothing(t *testing.T) {
	mgr := binary(t, "manager")
	common := []string{"-domain", "frozen.test", "-bind", "127.0.0.1:0", "-profile", "local", "-log", "error"}
	m1 := startProc(t, mgr, append(common, "-name", "m1")...)
	m2 := startProc(t, mgr, append(common, "-name", "m2", "-seeds", m1.gossip)...)
	testutil.WaitFor(t, 20*time.Second, "m1 writable, m2 a stand-by", func() bool {
		a, _ := writable(m1.http)
		b, err := writable(m2.http)
		return a && !b && err == nil
	})
	if code, body, err := post(context.Background(), m1.http, "before"); err != nil || code != http.StatusCreated {
		t.Fatalf("write before the pause: %d %s %v", code, body, err)
	}

	if err := m1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	// The signal takes effect a moment later: a write answered before that
	// was answered by a live active manager.
	testutil.WaitFor(t, 5*time.Second, "m1 stopped", func() bool { return stopped(m1.cmd.Process.Pid) })
	queued := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, body, err := post(ctx, m1.http, "queued")
		queued <- fmt.Sprintf("%d %s %v (answered %v after SIGSTOP)", code, body, err, time.Since(frozenAt))
	}()
	testutil.WaitFor(t, 20*time.Second, "m2 writable while m1 is frozen", func() bool {
		ok, _ := writable(m2.http)
		return ok
	})
	takeover := time.Since(frozenAt)
	// Stay frozen a while longer, as a long pause would.
	until := time.Now().Add(time.Second)
	testutil.WaitFor(t, 5*time.Second, "a longer pause", func() bool { return time.Now().After(until) })
	resumedAt := time.Since(frozenAt)
	if err := m1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	t.Logf("SIGCONT %v after SIGSTOP", resumedAt)

	// From the moment m1 answers again, it never says writable while m2
	// does, and it acknowledges nothing.
	res := <-queued
	if strings.HasPrefix(res, "201") {
		t.Errorf("the write queued during the pause was acknowledged after it: %s", res)
	}
	code, body, err := post(context.Background(), m1.http, "after")
	refusedIn := time.Since(resumed)
	if err != nil || code == http.StatusCreated {
		t.Errorf("a write to the resumed old active: %d %s %v, want a refusal", code, body, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		a, errA := writable(m1.http)
		b, errB := writable(m2.http)
		if errA == nil && errB == nil && a && b {
			t.Fatal("both managers report writable")
		}
		if a {
			t.Fatal("the resumed old active reports writable while the stand-by holds the role")
		}
	}
	t.Logf("stand-by writable %v after SIGSTOP; queued write: %.60s; a write sent at SIGCONT refused (%d) %v after it", takeover, res, code, refusedIn)
}
