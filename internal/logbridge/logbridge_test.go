package logbridge

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lg := New(l, "serf")
	lg.Printf("[WARN] memberlist: refuting a suspect message")
	lg.Printf("[DEBUG] serf: messageJoinType: x")
	lg.Printf("no level here")
	out := buf.String()
	for _, want := range []string{"level=WARN msg=\"memberlist: refuting a suspect message\" component=serf", "level=DEBUG", "level=INFO msg=\"no level here\""} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDiscardsWhenNothingIsEnabled(t *testing.T) {
	lg := New(slog.New(slog.DiscardHandler), "serf")
	if lg.Writer() != io.Discard {
		t.Fatalf("writer is %T, want io.Discard so that Printf skips formatting", lg.Writer())
	}
	var buf bytes.Buffer
	lg = New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})), "serf")
	lg.Printf("[ERR] serf: something failed")
	if !strings.Contains(buf.String(), "something failed") {
		t.Fatalf("an error-level logger lost an error line: %q", buf.String())
	}
}

// TestBadPacketLinesAreBounded: a flood of one kind of error line (one per
// bad packet) is cut to the burst plus one a second, the next line that
// passes says how many were dropped, and other kinds and info lines pass.
func TestBadPacketLinesAreBounded(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	lg := New(l, "memberlist")
	w := lg.Writer().(*writer)
	now := time.Unix(0, 0)
	w.lim.now = func() time.Time { return now }
	for i := range 1000 {
		lg.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.%d:7946", i%250)
	}
	lg.Printf("[ERR] memberlist: Failed to read header from=10.0.0.1:7946")
	lg.Printf("[INFO] memberlist: a line at info")
	if got := strings.Count(buf.String(), "Decrypt packet failed"); got != burst {
		t.Fatalf("%d decrypt lines logged of 1000 at one instant, want the burst of %d:\n%s", got, burst, buf.String())
	}
	for _, want := range []string{"Failed to read header", "a line at info"} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("a line of another kind was dropped: %q missing", want)
		}
	}
	buf.Reset()
	now = now.Add(interval)
	lg.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7946")
	if !strings.Contains(buf.String(), "dropped_similar=995") {
		t.Fatalf("a second later the line should pass and count the 995 dropped: %q", buf.String())
	}
}
