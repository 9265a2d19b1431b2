package server

import (
	"errors"
	"testing"

	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
)

func ch(name string, epoch, seq, prev uint64) change {
	return change{Name: name, Version: "1", Epoch: epoch, Seq: seq, PrevEpoch: prev}
}

func names(s *store) []string {
	list, _ := s.list()
	var out []string
	for _, a := range list {
		out = append(out, a.Name)
	}
	return out
}

// TestOfferAppliesOnlyWhatContinuesTheHistory: in order it applies; out of
// order it waits and applies once the missing change comes; a change of
// an older epoch is stale; one already applied is a duplicate; a new
// writer's change applies only on the history it continues.
func TestOfferAppliesOnlyWhatContinuesTheHistory(t *testing.T) {
	s := newStore()
	if out, done := s.offer(ch("a", 5, 1, 0)); out != applied || len(done) != 1 {
		t.Fatalf("first change: %v %v", out, done)
	}
	if out, done := s.offer(ch("c", 5, 3, 5)); out != gap || len(done) != 0 || !s.behind() {
		t.Fatalf("change 3 before 2: %v %v behind %v, want a gap", out, done, s.behind())
	}
	if out, done := s.offer(ch("b", 5, 2, 5)); out != applied || len(done) != 2 || s.behind() {
		t.Fatalf("change 2: %v %v behind %v, want 2 and 3 applied", out, done, s.behind())
	}
	if got := s.position(); got != (Position{5, 3}) {
		t.Fatalf("position %v, want 5/3", got)
	}
	if out, _ := s.offer(ch("b", 5, 2, 5)); out != duplicate {
		t.Fatalf("change 2 again: %v, want duplicate", out)
	}
	if out, _ := s.offer(ch("x", 4, 9, 4)); out != stale {
		t.Fatalf("a change of epoch 4: %v, want stale", out)
	}
	// A new writer continuing 5/3 applies; one that continues another
	// history (its change 4 follows an epoch-4 change) is a gap.
	if out, _ := s.offer(ch("y", 7, 4, 4)); out != gap {
		t.Fatalf("epoch 7 on another history: %v, want gap", out)
	}
	if out, _ := s.offer(ch("d", 7, 4, 5)); out != applied {
		t.Fatalf("epoch 7 continuing 5/3: %v, want applied", out)
	}
	if got := names(s); len(got) != 4 {
		t.Fatalf("catalog %v, want a b c d", got)
	}
}

// TestAdoptNewerOrForced: a snapshot replaces the catalog only when it is
// newer (epoch first), unless forced (the active manager's); pending
// changes that follow it are applied.
func TestAdoptNewerOrForced(t *testing.T) {
	s := newStore()
	s.offer(ch("a", 5, 1, 0))
	s.offer(ch("z", 9, 7, 9)) // waits for 9/6
	older := Snapshot{Position: Position{4, 50}, Artifacts: []*pb.Artifact{{Name: "old"}}}
	if replaced, _ := s.adopt(older, false); replaced {
		t.Fatal("adopted an older epoch's longer history")
	}
	newer := Snapshot{Position: Position{9, 6}, Artifacts: []*pb.Artifact{{Name: "a"}, {Name: "n"}}}
	replaced, done := s.adopt(newer, false)
	if !replaced || len(done) != 1 || s.position() != (Position{9, 7}) || s.behind() {
		t.Fatalf("adopt 9/6: replaced %v, applied %v, at %v", replaced, done, s.position())
	}
	if got := names(s); len(got) != 3 {
		t.Fatalf("catalog %v, want a n z", got)
	}
	if replaced, _ := s.adopt(older, true); !replaced || s.position() != (Position{4, 50}) {
		t.Fatal("a forced snapshot was not adopted")
	}
}

// TestCommitUndoesWhatItCannotAcknowledge: when the check after applying
// fails, the change is undone and its number is given again.
func TestCommitUndoesWhatItCannotAcknowledge(t *testing.T) {
	s := newStore()
	if _, _, err := s.commit(change{Name: "a", Version: "1"}, 3, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	lost := errors.New("lost the lease")
	var seen []string
	_, _, err := s.commit(change{Name: "a", Version: "2"}, 3, func() error {
		a := s.artifacts["a"] // the lock is held: look at the map itself
		seen = append(seen, a.Version)
		return lost
	})
	if !errors.Is(err, lost) || len(seen) != 1 || seen[0] != "2" {
		t.Fatalf("commit: %v (applied %v before the check)", err, seen)
	}
	if a, at, _ := s.get("a"); a.Version != "1" || at != (Position{3, 1}) {
		t.Fatalf("after the undo: version %s at %v, want 1 at 3/1", a.Version, at)
	}
	c, _, err := s.commit(change{Name: "b", Version: "1"}, 3, func() error { return nil })
	if err != nil || c.Seq != 2 || c.PrevEpoch != 3 {
		t.Fatalf("next change: %+v %v, want seq 2 after epoch 3", c, err)
	}
	if _, _, err := s.commit(change{Name: "c", Version: "1"}, 2, func() error { return nil }); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("commit at an older epoch: %v, want ErrStaleEpoch", err)
	}
	if _, _, err := s.commit(change{Name: "nope", Remove: true}, 3, func() error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove of a missing artifact: %v", err)
	}
}
