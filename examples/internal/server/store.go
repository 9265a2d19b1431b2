package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/carbonkit/carbon/cluster"
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

// ErrNotAcknowledged is returned when the manager lost the active role
// while applying a write: the change was undone, and the client should
// retry (HTTP 503, gRPC Unavailable), at the new active manager.
var ErrNotAcknowledged = errors.New("server: lost the active role during the write; not applied, retry")

// ErrNotFound is returned for an artifact the store does not hold.
var ErrNotFound = errors.New("server: no such artifact")

// change is the payload of a catalog message.
type change struct {
	Name    string `json:"n"`
	Version string `json:"v,omitempty"`
	Epoch   uint64 `json:"e"`
}

// store is an in-memory artifact catalog fenced by epoch: a change with an
// epoch lower than the highest seen is refused, so a deposed manager's late
// writes never overwrite its successor's.
type store struct {
	mu        sync.Mutex
	artifacts map[string]*pb.Artifact
	maxEpoch  uint64
}

func newStore() *store { return &store{artifacts: map[string]*pb.Artifact{}} }

func (s *store) apply(c change, remove bool) (*pb.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Epoch < s.maxEpoch {
		return nil, fmt.Errorf("%w: %d < %d", ErrStaleEpoch, c.Epoch, s.maxEpoch)
	}
	s.maxEpoch = c.Epoch
	if remove {
		if _, ok := s.artifacts[c.Name]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, c.Name)
		}
		delete(s.artifacts, c.Name)
		return nil, nil
	}
	a := &pb.Artifact{Name: c.Name, Version: c.Version, Epoch: c.Epoch}
	s.artifacts[c.Name] = a
	return cloneArtifact(a), nil
}

// restore puts back what get returned before a change (had: it existed).
func (s *store) restore(name string, prev *pb.Artifact, had bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if had {
		s.artifacts[name] = prev
	} else {
		delete(s.artifacts, name)
	}
}

func (s *store) get(name string) (*pb.Artifact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.artifacts[name]
	if !ok {
		return nil, false
	}
	return cloneArtifact(a), true
}

func (s *store) list() []*pb.Artifact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*pb.Artifact, 0, len(s.artifacts))
	for _, a := range s.artifacts {
		out = append(out, cloneArtifact(a))
	}
	slices.SortFunc(out, func(a, b *pb.Artifact) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func cloneArtifact(a *pb.Artifact) *pb.Artifact {
	return &pb.Artifact{Name: a.Name, Version: a.Version, Epoch: a.Epoch, ServedBy: a.ServedBy}
}

// handler returns the cluster message handler that applies a change.
func (s *store) handler(remove bool, log func(string, ...any)) cluster.Handler {
	return func(m cluster.Message) {
		var c change
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			log("catalog: bad message", "from", m.From, "err", err)
			return
		}
		if _, err := s.apply(c, remove); err != nil {
			log("catalog: change refused", "from", m.From, "artifact", c.Name, "err", err)
		}
	}
}
