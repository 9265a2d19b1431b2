package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
)

// Message names of the catalog's cluster messages. The active manager
// broadcasts every change; every other node (workers, stand-by managers,
// and in pattern 2 workers following the managers' domain as observers)
// applies it to its own copy.
const (
	MsgDeploy   = "catalog.deploy"
	MsgUndeploy = "catalog.undeploy"
)

// ErrStaleEpoch is returned when a change carries an epoch lower than one the
// store has already seen: it comes from a manager that has been superseded.
var ErrStaleEpoch = errors.New("server: change from a superseded manager (stale epoch)")

// ErrNotAcknowledged is returned when the manager cannot acknowledge a
// write: it lost the active role (or its write lease) while applying it,
// or its stand-by managers did not confirm they hold it. The client should
// retry (HTTP 503, gRPC Unavailable), at the active manager.
var ErrNotAcknowledged = errors.New("server: write not acknowledged; retry")

// ErrCatchingUp is returned while the node's catalog is catching up with
// its domain: reads on a node that knows it is behind, and writes on a
// manager that has just become active and has not yet caught up with its
// peers (HTTP 503, gRPC Unavailable).
var ErrCatchingUp = errors.New("server: catalog catching up; retry")

// ErrNotFound is returned for an artifact the store does not hold.
var ErrNotFound = errors.New("server: no such artifact")

// Position is where a catalog stands: the epoch and the sequence number of
// the last change it applied. Sequence numbers run on across epochs; a
// writer gives each change the next number. Positions compare by epoch
// first, then sequence (as Raft compares logs by last term, then index):
// a history continued by a newer writer is newer than a longer one a
// deposed writer left behind.
type Position struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// Less reports whether p is older than q.
func (p Position) Less(q Position) bool {
	return p.Epoch < q.Epoch || (p.Epoch == q.Epoch && p.Seq < q.Seq)
}

// change is the payload of a catalog message. One writer (an epoch)
// numbers its changes in order, so (Epoch, Seq) names one change, and
// PrevEpoch (the epoch of change Seq-1) lets a follower check that the
// change continues the history it holds.
type change struct {
	Name      string `json:"n"`
	Version   string `json:"v,omitempty"`
	Epoch     uint64 `json:"e"`
	Seq       uint64 `json:"q"`
	PrevEpoch uint64 `json:"p"`
	Remove    bool   `json:"-"` // carried by the message name
}

func (c change) pos() Position { return Position{Epoch: c.Epoch, Seq: c.Seq} }

// Snapshot is the whole catalog at a position: what GET /api/catalog
// serves, and what a node catching up adopts.
type Snapshot struct {
	Node string `json:"node"`
	Position
	// Ready is false while the node is catching up (before it first
	// reports ready, or after it found a gap in the changes it received).
	Ready bool `json:"ready"`
	// Writable is true when the node takes writes now: the cluster's
	// Writable and, on a manager that has just become active, caught up
	// with its peers.
	Writable  bool           `json:"writable"`
	Artifacts []*pb.Artifact `json:"artifacts"`
}

// offer outcomes.
type outcome int

const (
	applied   outcome = iota
	duplicate         // at or before the store's position in its epoch
	stale             // from an epoch older than the store's
	gap               // does not continue the store's history: catch up
)

// maxPending bounds the changes a follower keeps while it waits for a
// missing one; past it, it catches up from a snapshot anyway.
const maxPending = 1024

// store is an in-memory artifact catalog at a Position. The active manager
// commits changes to it; followers offer the changes they receive, which
// apply only when they continue its history, and adopt snapshots to catch
// up. Changes that arrive ahead of a missing one wait in pending.
type store struct {
	mu        sync.Mutex
	artifacts map[string]*pb.Artifact
	at        Position
	pending   map[uint64]change
}

func newStore() *store {
	return &store{artifacts: map[string]*pb.Artifact{}, pending: map[uint64]change{}}
}

func (s *store) position() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at
}

// applyLocked changes the map; it returns the artifact written (nil for a
// removal) and what it replaced.
func (s *store) applyLocked(c change) (a *pb.Artifact, prev *pb.Artifact, had bool) {
	prev, had = s.artifacts[c.Name]
	if c.Remove {
		delete(s.artifacts, c.Name)
	} else {
		a = &pb.Artifact{Name: c.Name, Version: c.Version, Epoch: c.Epoch}
		s.artifacts[c.Name] = a
	}
	s.at = c.pos()
	return a, prev, had
}

// commit numbers c as the next change of epoch, applies it, and then asks
// ok whether it may stand; if not it undoes the change. The store's lock
// is held throughout, so no reader ever sees a change that is undone.
func (s *store) commit(c change, epoch uint64, ok func() error) (change, *pb.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch < s.at.Epoch {
		return c, nil, fmt.Errorf("%w: writing at %d, the catalog is at %d", ErrStaleEpoch, epoch, s.at.Epoch)
	}
	if _, exists := s.artifacts[c.Name]; c.Remove && !exists {
		return c, nil, fmt.Errorf("%w: %q", ErrNotFound, c.Name)
	}
	was := s.at
	c.Epoch, c.Seq, c.PrevEpoch = epoch, was.Seq+1, was.Epoch
	a, prev, had := s.applyLocked(c)
	if err := ok(); err != nil {
		if had {
			s.artifacts[c.Name] = prev
		} else {
			delete(s.artifacts, c.Name)
		}
		s.at = was
		return c, nil, err
	}
	if a != nil {
		a = cloneArtifact(a)
	}
	return c, a, nil
}

// offer applies a change a follower received if it continues the store's
// history, then any pending changes that now follow. It returns the
// changes applied, in order.
func (s *store) offer(c change) (outcome, []change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case c.Epoch < s.at.Epoch:
		return stale, nil
	case c.Epoch == s.at.Epoch && c.Seq <= s.at.Seq:
		return duplicate, nil
	case c.Seq != s.at.Seq+1 || c.PrevEpoch != s.at.Epoch:
		if len(s.pending) < maxPending {
			s.pending[c.Seq] = c
		}
		return gap, nil
	}
	s.applyLocked(c)
	done := append([]change{c}, s.drainLocked()...)
	if len(s.pending) > 0 {
		return gap, done
	}
	return applied, done
}

// drainLocked applies the pending changes that continue the history and
// drops those it has passed.
func (s *store) drainLocked() []change {
	var done []change
	for {
		next, ok := s.pending[s.at.Seq+1]
		if !ok || next.PrevEpoch != s.at.Epoch {
			break
		}
		delete(s.pending, next.Seq)
		s.applyLocked(next)
		done = append(done, next)
	}
	for q, p := range s.pending {
		if p.Seq <= s.at.Seq {
			delete(s.pending, q)
		}
	}
	return done
}

// behind reports whether changes wait for a missing one.
func (s *store) behind() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) > 0
}

// adopt replaces the catalog by snap when force is set or snap is newer,
// then applies the pending changes that follow it. It reports whether it
// replaced the catalog, and the pending changes applied.
func (s *store) adopt(snap Snapshot, force bool) (bool, []change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && !s.at.Less(snap.Position) {
		return false, s.drainLocked()
	}
	s.artifacts = make(map[string]*pb.Artifact, len(snap.Artifacts))
	for _, a := range snap.Artifacts {
		s.artifacts[a.Name] = &pb.Artifact{Name: a.Name, Version: a.Version, Epoch: a.Epoch}
	}
	s.at = snap.Position
	return true, s.drainLocked()
}

func (s *store) get(name string) (*pb.Artifact, Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.artifacts[name]
	if !ok {
		return nil, s.at, false
	}
	return cloneArtifact(a), s.at, true
}

func (s *store) list() ([]*pb.Artifact, Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*pb.Artifact, 0, len(s.artifacts))
	for _, a := range s.artifacts {
		out = append(out, cloneArtifact(a))
	}
	slices.SortFunc(out, func(a, b *pb.Artifact) int { return strings.Compare(a.Name, b.Name) })
	return out, s.at
}

func cloneArtifact(a *pb.Artifact) *pb.Artifact {
	return &pb.Artifact{Name: a.Name, Version: a.Version, Epoch: a.Epoch, ServedBy: a.ServedBy}
}

func decodeChange(payload []byte, remove bool) (change, error) {
	var c change
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, err
	}
	if c.Name == "" || c.Seq == 0 {
		return c, fmt.Errorf("change without a name or a sequence number")
	}
	c.Remove = remove
	return c, nil
}
