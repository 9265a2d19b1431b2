package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/role"
)

// writable reports whether the server takes writes now: its node is
// writable and, at that epoch, it has caught up with its peers.
func (s *Server) writable() bool {
	return s.node.Writable() && s.activeEpoch.Load() == s.node.Epoch()
}

// confirmTimeout bounds how long a write waits for the stand-by managers
// to confirm they hold it.
const confirmTimeout = 2 * time.Second

// write applies a change on the active manager under its epoch, sends it,
// and acknowledges it only when that is safe:
//
//   - the Guard let the call through, and it is checked again here (the
//     node may have lost the active role since);
//   - the manager caught up with its peers at this epoch (takeOver);
//   - after applying, the node is still writable at the same epoch;
//     otherwise the change is undone before anyone could read it
//     (ErrNotAcknowledged: a pause may have let another manager take over);
//   - every alive stand-by manager holds it (so the next active has it,
//     whenever this one stops), and the node is still writable at the same
//     epoch. Otherwise ErrNotAcknowledged: the change was sent and may
//     survive, but the client is not told it did.
func (s *Server) write(ctx context.Context, c change) (*pb.Artifact, change, error) {
	if err := s.guard.CheckWrite(ctx); err != nil {
		s.hist.reject(c.Name, "read-only")
		return nil, c, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// In Active/Passive mode the epoch of a writable node is never 0; in
	// Active/Active mode it always is (no claims).
	epoch := s.node.Epoch()
	if !s.node.Writable() {
		s.hist.reject(c.Name, "read-only")
		if err := s.guard.CheckWrite(ctx); err != nil {
			return nil, c, err
		}
		return nil, c, fmt.Errorf("%w: lost the active role before applying %q", ErrNotAcknowledged, c.Name)
	}
	if s.activeEpoch.Load() != epoch {
		select {
		case s.wakeWatch <- struct{}{}:
		default:
		}
		s.hist.reject(c.Name, "catching-up")
		return nil, c, fmt.Errorf("%w: became active at epoch %d, not yet caught up with its peers", ErrCatchingUp, epoch)
	}
	still := func() bool { return s.node.Writable() && s.node.Epoch() == epoch }
	c, a, err := s.store.commit(c, epoch, func() error {
		if !still() {
			return fmt.Errorf("%w: lost the active role or its write lease while applying %q at epoch %d (undone)", ErrNotAcknowledged, c.Name, epoch)
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		s.hist.reject(c.Name, "not-found")
		return nil, c, err
	case errors.Is(err, ErrStaleEpoch):
		s.hist.reject(c.Name, "stale-epoch")
		return nil, c, err
	case err != nil:
		s.hist.reject(c.Name, "lost-lease")
		return nil, c, err
	}
	name := MsgDeploy
	if c.Remove {
		name = MsgUndeploy
	}
	payload, _ := json.Marshal(c)
	if err := s.node.Broadcast(ctx, name, payload); err != nil {
		s.log.Warn("catalog: broadcast failed; peers catch up later", "artifact", c.Name, "err", err)
	}
	if err := s.confirm(ctx, c.pos()); err != nil {
		s.hist.reject(c.Name, "unconfirmed")
		return nil, c, fmt.Errorf("%w: %q at epoch %d seq %d: %v", ErrNotAcknowledged, c.Name, epoch, c.Seq, err)
	}
	if !still() {
		s.hist.reject(c.Name, "unconfirmed")
		return nil, c, fmt.Errorf("%w: lost the active role or its write lease before acknowledging %q at epoch %d seq %d", ErrNotAcknowledged, c.Name, epoch, c.Seq)
	}
	s.hist.accept(c)
	if a != nil {
		a.ServedBy = s.node.Name()
	}
	return a, c, nil
}

// confirm waits until every alive trusted stand-by manager of the node's
// sub-domain reports a catalog at or past at (a member that stops being
// alive meanwhile is no longer waited for).
func (s *Server) confirm(ctx context.Context, at Position) error {
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	done := map[string]bool{}
	var last error
	for {
		var waiting []cluster.Member
		for _, m := range s.node.View().Alive(s.node.SubDomain()) {
			if m.Role == role.Manager && m.Name != s.node.Name() && m.Trusted() && !done[m.Name] {
				if _, ok := m.Endpoint("http"); ok {
					waiting = append(waiting, m)
				}
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		snaps, errs := s.fetchEach(ctx, waiting, s.fetchHead)
		for name, snap := range snaps {
			if !snap.Position.Less(at) {
				done[name] = true
			} else {
				last = fmt.Errorf("%s is at epoch %d seq %d", name, snap.Epoch, snap.Seq)
			}
		}
		if len(errs) > 0 {
			last = errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stand-by managers did not confirm: %v", last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
