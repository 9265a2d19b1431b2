package nginx

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/nginxconf"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/internal/wait"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) {
	// memberlist's probeNode goroutine outlives Shutdown by up to one probe
	// timeout (it waits for an ack with a timer); cluster.Node.Close does
	// not wait for it.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func testLogger() *slog.Logger {
	if os.Getenv("CARBON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// needNginx skips the test when no nginx binary is installed.
func needNginx(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		for _, c := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
		t.Skip("nginx binary not found in PATH or /usr/sbin: install Debian's nginx package (.ci/run does) to run this test")
	}
	return p
}

// nginxProc is a real Nginx started by a test, in a temporary prefix, with
// one upstream proxied from 127.0.0.1:port.
type nginxProc struct {
	bin, dir, conf, upstreams string
	addr                      string
	cmd                       *exec.Cmd
	exited                    chan struct{}
}

func (p *nginxProc) args() []string { return []string{"-p", p.dir, "-c", p.conf} }

// markTemplate adds to DefaultTemplate a variable per upstream that lists
// its servers, which the test server sends back in X-Upstream-Servers: the
// tests see which configuration served a request.
const markTemplate = DefaultTemplate + `{{range .Upstreams}}
map $pid $carbon_{{.Name}} { default "{{range $i, $s := .Servers}}{{if $i}} {{end}}{{$s.Name}}{{if $s.Backup}}(backup){{end}}{{end}}"; }
{{end}}`

// fileWriter returns a FileWriter for p's upstream file with template tmpl
// ("" for DefaultTemplate plus the marks tests use).
func (p *nginxProc) fileWriter(t testing.TB, tmpl string) *FileWriter {
	t.Helper()
	if tmpl == "" {
		tmpl = markTemplate
	}
	w, err := NewFileWriter(FileConfig{Path: p.upstreams, Template: tmpl, Command: p.bin, Args: p.args()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// startNginx starts Nginx proxying to "upstream name" and stops it at the
// end of the test, checking that no Nginx process of it is left.
func startNginx(t testing.TB, name string) *nginxProc {
	t.Helper()
	bin := needNginx(t)
	dir := t.TempDir()
	p := &nginxProc{bin: bin, dir: dir, conf: filepath.Join(dir, "nginx.conf"), upstreams: filepath.Join(dir, "upstreams.conf")}
	initial := fmt.Sprintf("upstream %s { server 127.0.0.1:1 down; }\nmap $pid $carbon_%s { default \"\"; }\n", name, name)
	if err := os.WriteFile(p.upstreams, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		p.addr = freeAddr(t)
		conf := nginxconf.Head(dir) + fmt.Sprintf(`    keepalive_timeout 0;
    include %[1]s;
    server {
        listen %[2]s;
        location / {
            proxy_pass http://%[3]s;
            proxy_connect_timeout 1s;
            add_header X-Nginx-Pid $pid always;
            add_header X-Upstream-Servers $carbon_%[3]s always;
        }
    }
}
`, p.upstreams, p.addr, name)
		if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, p.args()...)
		p.cmd.Stderr = os.Stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start nginx: %v", err)
		}
		p.exited = make(chan struct{})
		go func(cmd *exec.Cmd, ch chan struct{}) { cmd.Wait(); close(ch) }(p.cmd, p.exited)
		if p.waitListening(5 * time.Second) {
			break
		}
		p.cmd.Process.Kill()
		<-p.exited
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", log)
		}
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *nginxProc) waitListening(d time.Duration) bool {
	listening := false
	_ = wait.For(d, 10*time.Millisecond, func() bool {
		select {
		case <-p.exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", p.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			listening = true
		}
		return listening
	})
	return listening
}

// workers returns the pids of the master's worker processes.
func (p *nginxProc) workers() []int {
	pid := p.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// waitServing waits until Nginx runs only a worker whose configuration
// has exactly the servers want (backups suffixed "(backup)"): every new
// connection is then served with it.
func (p *nginxProc) waitServing(t testing.TB, want ...string) {
	t.Helper()
	w := strings.Join(want, " ")
	var last string
	serving := func() bool {
		resp, err := client.Get("http://" + p.addr + "/")
		if err != nil {
			last = err.Error()
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		last = resp.Header.Get("X-Upstream-Servers")
		pid, _ := strconv.Atoi(resp.Header.Get("X-Nginx-Pid"))
		return last == w && slices.Equal(p.workers(), []int{pid})
	}
	if wait.For(10*time.Second, 5*time.Millisecond, serving) != nil {
		t.Fatalf("timed out waiting for nginx to serve upstream [%s]; it serves [%s], workers %v", w, last, p.workers())
	}
}

func processExists(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie already exited.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func (p *nginxProc) stop(t testing.TB) {
	workers := p.workers()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("nginx did not stop on SIGTERM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, w := range workers {
		if wait.Until(ctx, 10*time.Millisecond, func() bool { return !processExists(w) }) != nil {
			t.Errorf("nginx worker %d left running after its master stopped", w)
			syscall.Kill(w, syscall.SIGKILL)
		}
	}
}

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// get sends one request through Nginx and returns the backend's name, or
// the status when it is not 200.
func (p *nginxProc) get() (string, error) {
	resp, err := client.Get("http://" + p.addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// spread sends n requests and counts them by backend.
func (p *nginxProc) spread(t testing.TB, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		name, err := p.get()
		if err != nil {
			t.Fatalf("request through nginx: %v", err)
		}
		got[name]++
	}
	return got
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// backend is a real HTTP server on 127.0.0.1 that replies its name and
// counts its hits.
type backend struct {
	name string
	addr string
	hits atomic.Int64
	srv  *http.Server
}

func startBackend(t testing.TB, name string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: l.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.hits.Add(1)
		io.WriteString(w, name)
	})}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

const domain = "nginx.test"

// testProfile is serf's LAN timing unless CARBON_TEST_PROFILE=local: the
// local profile's 50 ms probe timeout makes members flap (suspected, then
// failed) on this loaded machine under -race, which would move them in and
// out of the upstreams and make the tests' counts meaningless.
var testProfile = func() cluster.Profile {
	if p, err := cluster.ParseProfile(os.Getenv("CARBON_TEST_PROFILE")); err == nil {
		return p
	}
	return cluster.ProfileLAN
}()

// member joins a worker or manager whose "http" endpoint is b.
func member(t testing.TB, name string, r role.Role, b *backend, seed *cluster.Node, mod func(*cluster.Config)) *cluster.Node {
	t.Helper()
	cfg := cluster.Config{Domain: domain, Role: r, NodeName: name, BindAddr: "127.0.0.1:0", Profile: testProfile,
		Endpoints: map[string]string{"http": b.addr}, Logger: testLogger()}
	if seed != nil {
		cfg.Seeds = []string{seed.Self().Addr}
	}
	if mod != nil {
		mod(&cfg)
	}
	return join(t, cfg)
}

// observer joins an observer node.
func observer(t testing.TB, seed *cluster.Node) *cluster.Node {
	t.Helper()
	cfg := cluster.Config{Domain: domain, Observer: true, NodeName: "observer", BindAddr: "127.0.0.1:0",
		Profile: testProfile, Logger: testLogger()}
	if seed != nil {
		cfg.Seeds = []string{seed.Self().Addr}
	}
	return join(t, cfg)
}

func join(t testing.TB, cfg cluster.Config) *cluster.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Join(ctx, cfg)
	if err != nil {
		t.Fatalf("Join(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// runController starts c.Run and stops it at the end of the test.
func runController(t testing.TB, c *Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// servers returns the names of the servers of the named upstream last
// applied by c, backups suffixed with "(backup)".
func servers(c *Controller, name string) []string {
	for _, u := range c.Upstreams() {
		if u.Name == name {
			out := []string{}
			for _, s := range u.Servers {
				n := s.Name
				if s.Backup {
					n += "(backup)"
				}
				out = append(out, n)
			}
			return out
		}
	}
	return nil
}

// waitServers waits until c has applied exactly want to upstream name.
func waitServers(t testing.TB, c *Controller, name string, want ...string) {
	t.Helper()
	waitServersWithin(t, 10*time.Second, c, name, want...)
}

func waitServersWithin(t testing.TB, d time.Duration, c *Controller, name string, want ...string) {
	t.Helper()
	if wait.For(d, 5*time.Millisecond, func() bool { return slices.Equal(servers(c, name), want) }) != nil {
		t.Fatalf("timed out waiting for upstream %s = %v; have %v (stats %+v)", name, want, servers(c, name), c.Stats())
	}
}
