package cluster

import (
	"bytes"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
)

// TestBadPacketsAreLoggedAtABoundedRate: a flood of junk UDP packets at a
// real node's gossip port (anyone who can reach it can send them) gives a
// handful of error lines, not one per packet, and the node keeps serving.
func TestBadPacketsAreLoggedAtABoundedRate(t *testing.T) {
	var logs testutil.Buffer
	cfg := local("junk.test", role.Worker)
	cfg.Key = bytes.Repeat([]byte{7}, 32)
	cfg.Bootstrap = true
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	n := start(t, cfg)
	conn, err := net.Dial("udp", addrOf(n))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = 2000
	junk := bytes.Repeat([]byte{0xAB}, 64)
	for range sent {
		if _, err := conn.Write(junk); err != nil {
			t.Fatalf("sending junk: %v", err)
		}
	}
	lines := func() int {
		c := 0
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "component=memberlist") && strings.Contains(l, "level=ERROR") {
				c++
			}
		}
		return c
	}
	// Every line that passes after a drop says how many were dropped:
	// keep sending one more junk packet until such a line shows that the
	// flood was read, and count what it let through.
	dropped := regexp.MustCompile(`dropped_similar=(\d+)`)
	total := 0
	waitFor(t, 15*time.Second, "a line counting the dropped ones", func() bool {
		conn.Write(junk)
		total = 0
		for _, m := range dropped.FindAllStringSubmatch(logs.String(), -1) {
			d, _ := strconv.Atoi(m[1])
			total += d
		}
		return total >= sent/2
	})
	if got := lines(); got > 20 {
		t.Fatalf("%d memberlist error lines for %d junk packets (%d counted as dropped), want a bounded few:\n%s", got, sent, total, logs.String())
	}
	if s := n.Self().Status; s != StatusAlive {
		t.Fatalf("the node is %v after the flood, want alive", s)
	}
}
