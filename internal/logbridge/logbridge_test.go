package logbridge

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
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
