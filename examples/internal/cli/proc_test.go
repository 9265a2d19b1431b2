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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/examples/internal/server"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/internal/wait"
)

// Helpers that run the example binaries as OS processes on fixed
// 127.0.0.1 ports, so that a process killed with -9 comes back at the same
// addresses, and its HTTP port can be polled from the moment it starts.

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

// freePort returns a 127.0.0.1 port free for TCP and UDP just now.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// proc is an example binary run as a process.
type proc struct {
	name, bin          string
	args               []string
	gossip, http, grpc string
	history            string // its -history file
	logs               string // its stderr, one file across restarts

	mu      sync.Mutex
	cmd     *exec.Cmd
	serving chan struct{} // closed at its "serving" line
}

// newProc describes a process of bin named name in domain, on fresh ports.
func newProc(t *testing.T, bin, name, domain string, extra ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, bin: bin, gossip: freePort(t), http: freePort(t), grpc: freePort(t),
		history: filepath.Join(dir, "history.jsonl"), logs: filepath.Join(dir, "stderr.log")}
	p.args = append([]string{"-domain", domain, "-name", name, "-bind", p.gossip, "-http", p.http, "-grpc", p.grpc,
		"-profile", "local", "-log", "warn", "-history", p.history}, extra...)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.logs)
			t.Logf("%s stderr:\n%s", name, b)
		}
	})
	return p
}

// start starts the process (again); it does not wait for it to serve.
func (p *proc) start(t *testing.T) {
	t.Helper()
	logs, err := os.OpenFile(p.logs, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs.Close()
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		closed := false
		for sc.Scan() {
			if !closed && strings.Contains(sc.Text(), " serving in ") {
				close(serving)
				closed = true
			}
		}
	}()
	p.mu.Lock()
	p.cmd, p.serving = cmd, serving
	p.mu.Unlock()
}

// waitServing waits for the process's "serving" line.
func (p *proc) waitServing(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	ch := p.serving
	p.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no serving line within 30 s", p.name)
	}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
}

// waitStopped waits until every thread of the process is stopped (state T
// in /proc): SIGSTOP takes effect asynchronously, and a busy machine may
// let the process run on for some milliseconds.
func (p *proc) waitStopped(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	testutil.WaitFor(t, 5*time.Second, p.name+" stopped", func() bool {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				return false
			}
			// pid (comm) state ...: comm may hold spaces, so read after ')'.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				return false
			}
		}
		return true
	})
}

// kill9 kills the process with SIGKILL and reaps it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmd.Wait()
}

func (p *proc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// quick is the client of the polls: no keep-alive, so that a frozen or
// killed process costs each poll one short timeout.
func quick(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

func status(addr string, timeout time.Duration) (cluster.StatusReport, error) {
	var st cluster.StatusReport
	resp, err := quick(timeout).Get("http://" + addr + "/status?format=json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// writable reads the cluster's Writable from a status page.
func writable(addr string) (bool, error) {
	st, err := status(addr, 300*time.Millisecond)
	if err != nil || len(st.Domains) == 0 {
		return false, err
	}
	return st.Domains[0].Writable, nil
}

func catalog(addr string) (server.Snapshot, error) {
	var snap server.Snapshot
	resp, err := quick(300 * time.Millisecond).Get("http://" + addr + server.CatalogPath)
	if err != nil {
		return snap, err
	}
	defer resp.Body.Close()
	return snap, json.NewDecoder(resp.Body).Decode(&snap)
}

// reply is an HTTP answer with the catalog position it says it reflects.
type reply struct {
	code       int
	body       string
	epoch, seq uint64
}

func (r reply) String() string {
	return fmt.Sprintf("%d (epoch %d seq %d) %s", r.code, r.epoch, r.seq, r.body)
}

func do(ctx context.Context, c *http.Client, method, url, body string) (reply, error) {
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	r.epoch, _ = strconv.ParseUint(resp.Header.Get(server.EpochHTTPHeader), 10, 64)
	r.seq, _ = strconv.ParseUint(resp.Header.Get(server.SeqHTTPHeader), 10, 64)
	return r, nil
}

// deploy deploys an artifact on addr directly.
func deploy(ctx context.Context, addr, name string) (reply, error) {
	return do(ctx, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, http.MethodPost,
		"http://"+addr+"/api/artifacts", `{"name":"`+name+`","version":"1"}`)
}

// interval is a span in which a poll saw a node writable: the poll was
// sent at from and answered at to.
type interval struct{ from, to time.Time }

// writablePoller polls status pages and records when each said writable.
type writablePoller struct {
	mu   sync.Mutex
	seen map[string][]interval
	stop chan struct{}
	wg   sync.WaitGroup
}

func pollWritable(procs ...*proc) *writablePoller {
	w := &writablePoller{seen: map[string][]interval{}, stop: make(chan struct{})}
	for _, p := range procs {
		w.wg.Go(func() {
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				from := time.Now()
				ok, err := writable(p.http)
				if err == nil && ok {
					w.mu.Lock()
					w.seen[p.name] = append(w.seen[p.name], interval{from, time.Now()})
					w.mu.Unlock()
				}
				if err != nil {
					// A refused connection returns at once: do not spin.
					select {
					case <-w.stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		})
	}
	return w
}

// done stops the polls and returns a pair of polls of two different nodes
// that both said writable in overlapping spans, if any.
func (w *writablePoller) done() (string, bool) {
	close(w.stop)
	w.wg.Wait()
	for a, as := range w.seen {
		for b, bs := range w.seen {
			if a >= b {
				continue
			}
			for _, x := range as {
				for _, y := range bs {
					if x.from.Before(y.to) && y.from.Before(x.to) {
						return fmt.Sprintf("%s writable in [%s, %s], %s in [%s, %s]", a, x.from.Format("15:04:05.000"), x.to.Format("15:04:05.000"),
							b, y.from.Format("15:04:05.000"), y.to.Format("15:04:05.000")), true
					}
				}
			}
		}
	}
	return "", false
}

// historyLine is any line of a -history file.
type historyLine struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Event  string    `json:"event"`
	Key    string    `json:"key"`
	Epoch  uint64    `json:"epoch"`
	Seq    uint64    `json:"seq"`
	Reason string    `json:"reason"`
	Value  bool      `json:"value"`
}

func readHistory(t *testing.T, p *proc) []historyLine {
	t.Helper()
	b, err := os.ReadFile(p.history)
	if err != nil {
		t.Fatalf("%s: history: %v", p.name, err)
	}
	var out []historyLine
	for line := range bytes.Lines(b) {
		var h historyLine
		if err := json.Unmarshal(line, &h); err != nil {
			t.Fatalf("%s: history line %q: %v", p.name, line, err)
		}
		if h.Node != p.name || h.Time.IsZero() || h.Event == "" {
			t.Fatalf("%s: history line without node, time or event: %q", p.name, line)
		}
		out = append(out, h)
	}
	return out
}

// acknowledged deploys names on addr in turn, retrying each on 503 until
// it is acknowledged (201) or ctx ends; it returns the names acknowledged.
func acknowledged(ctx context.Context, addr string, names ...string) []string {
	var out []string
	for _, n := range names {
		for ctx.Err() == nil {
			r, err := deploy(ctx, addr, n)
			if err == nil && r.code == http.StatusCreated {
				out = append(out, n)
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return out
}

func has(snap server.Snapshot, names []string) []string {
	got := map[string]bool{}
	for _, a := range snap.Artifacts {
		got[a.Name] = true
	}
	var missing []string
	for _, n := range names {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

func keys(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%02d", prefix, i))
	}
	return out
}

// waitHolds waits until the node at addr is ready and holds names.
func waitHolds(t *testing.T, p *proc, names []string) {
	t.Helper()
	var last string
	if err := wait.For(20*time.Second, 5*time.Millisecond, func() bool {
		snap, err := catalog(p.http)
		if err != nil {
			last = err.Error()
			return false
		}
		m := has(snap, names)
		last = fmt.Sprintf("ready %v at epoch %d seq %d, missing %v", snap.Ready, snap.Epoch, snap.Seq, m)
		return snap.Ready && len(m) == 0
	}); err != nil {
		t.Fatalf("%s does not hold the acknowledged writes: %s", p.name, last)
	}
}
