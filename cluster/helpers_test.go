package cluster

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/internal/leakcheck"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testLogger() *slog.Logger {
	if os.Getenv("CARBON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet
}

// local returns a Config for a fast node on loopback.
func local(domain string, r role.Role) Config {
	return Config{Domain: domain, Role: r, BindAddr: "127.0.0.1:0", Profile: ProfileLocal, Logger: testLogger()}
}

// start joins cfg and closes the node at the end of the test.
func start(t testing.TB, cfg Config) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Join(ctx, cfg)
	if err != nil {
		t.Fatalf("Join(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func addrOf(n *Node) string { return n.Self().Addr }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// aliveCount is how many alive, serving members n sees.
func aliveCount(n *Node) int {
	c := 0
	for _, m := range n.Members() {
		if m.Status == StatusAlive && m.State == Serving {
			c++
		}
	}
	return c
}

func converged(nodes []*Node, want int) func() bool {
	return func() bool {
		for _, n := range nodes {
			if aliveCount(n) != want {
				return false
			}
		}
		return true
	}
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func lookupEnv(k string) string { return os.Getenv(k) }

// serfMember is the member name as s has it, and whether s has it.
func serfMember(s *serf.Serf, name string) (serf.Member, bool) {
	for _, m := range s.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return serf.Member{}, false
}
