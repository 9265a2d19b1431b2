package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/testutil"
	"github.com/carbonkit/carbon/role"
)

func startTest(t *testing.T, name string, r role.Role, seeds ...string) (*Server, string) {
	t.Helper()
	hist := filepath.Join(t.TempDir(), name+".jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, Config{
		Cluster: cluster.Config{Domain: "catchup.test", Role: r, NodeName: name, BindAddr: "127.0.0.1:0", Seeds: seeds, Profile: cluster.ProfileLocal,
			Logger: slog.New(slog.DiscardHandler)},
		HistoryPath: hist,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s, hist
}

// TestFollowerCatchesUpMissedChanges: a change a worker never hears of
// (its message lost) is caught up by the periodic comparison with the
// active manager; a lost change followed by one it does hear of is a gap,
// caught up the same way. The history records each catch-up.
func TestFollowerCatchesUpMissedChanges(t *testing.T) {
	m, _ := startTest(t, "m1", role.Manager)
	testutil.WaitFor(t, 10*time.Second, "m1 takes writes", m.writable)
	w, whist := startTest(t, "w1", role.Worker, m.Node().Self().Addr)

	// Committed on the manager, never sent: as if every copy were lost.
	lost := func(name string) Position {
		c, _, err := m.store.commit(change{Name: name, Version: "1"}, m.Node().Epoch(), func() error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return c.pos()
	}
	at := lost("lost-1")
	testutil.WaitFor(t, 3*checkEvery, "w1 catches up with the last change it never heard of", func() bool {
		return w.store.position() == at
	})

	lost("lost-2")
	_, sent, err := m.write(context.Background(), change{Name: "sent", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 3*checkEvery, "w1 fills the gap before the change it heard of", func() bool {
		_, _, ok := w.store.get("lost-2")
		return ok && w.store.position() == sent.pos()
	})
	if !w.ready.Load() {
		t.Fatal("w1 caught up but is not ready")
	}

	b, err := os.ReadFile(whist)
	if err != nil {
		t.Fatal(err)
	}
	catchups := 0
	for line := range bytes.Lines(b) {
		var h HistoryCatchUp
		if err := json.Unmarshal(line, &h); err != nil {
			t.Fatalf("history line %q: %v", line, err)
		}
		if h.Event == "catchup" && h.From == "m1" && h.Node == "w1" {
			catchups++
		}
	}
	if catchups < 2 {
		t.Fatalf("w1's history records %d catch-ups from m1, want 2 or more:\n%s", catchups, b)
	}
}
