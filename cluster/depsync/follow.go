package depsync

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// poke asks the follow loop for a round, without blocking.
func (s *Syncer) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// follow runs sync rounds on announcements, view changes of the active
// manager, peers' hints and a timer.
func (s *Syncer) follow() {
	defer s.wg.Done()
	views := s.n.Watch(s.ctx)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	var active string
	var lastErr string
	for {
		select {
		case <-s.ctx.Done():
			if views != nil {
				for range views {
				}
			}
			return
		case v, ok := <-views:
			if !ok {
				views = nil
				continue
			}
			m, _ := v.Active(s.opts.ManagerSubDomain)
			key := fmt.Sprint(m.Name, m.Claim)
			if key == active {
				continue
			}
			active = key
		case <-t.C:
		case <-s.kick:
		}
		if s.n.Writable() {
			continue
		}
		_, err := s.Sync(s.ctx)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != lastErr && err != nil && s.ctx.Err() == nil {
			s.log.Warn("sync failed", "err", err)
		}
		lastErr = msg
	}
}

// Sync brings the node to the active manager's latest revision now and
// returns the node's current revision. The follow loop calls it on its own;
// call it to wait for a first sync at start-up, for example. On the active
// manager it does nothing. Errors: ErrNoManager, ErrFenced for an older
// revision, ErrRevisionFailed for one whose hook failed before, the
// manifest and blob errors (nothing changed on disk then but verified
// blobs in the cache), and ErrDeploy after a rollback.
func (s *Syncer) Sync(ctx context.Context) (Revision, error) {
	s.op.Lock()
	defer s.op.Unlock()
	if s.ctx.Err() != nil {
		return s.Current(), ErrClosed
	}
	if s.n.Writable() {
		return s.Current(), nil
	}
	mgr, ok := s.n.Active(s.opts.ManagerSubDomain)
	if !ok {
		return s.Current(), ErrNoManager
	}
	if mgr.Name == s.n.Name() {
		return s.Current(), nil
	}
	ep, ok := mgr.Endpoint(s.opts.Endpoint)
	if !ok {
		return s.Current(), fmt.Errorf("%w: %s has no %q endpoint", ErrNoManager, mgr.Name, s.opts.Endpoint)
	}
	start := time.Now()
	ctx, span := s.tr.Start(ctx, "depsync.Sync", trace.WithAttributes(attribute.String("depsync.manager", mgr.Name)))
	defer span.End()
	rev, err := s.sync(ctx, mgr.Name, ep)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return s.Current(), err
	}
	if !rev.IsZero() {
		span.SetAttributes(attribute.String("depsync.revision", rev.ID()))
		s.inst.deployed(ctx, time.Since(start), rev)
	}
	return s.Current(), nil
}

// sync is one round against the manager at ep; it returns the revision it
// applied, zero if none.
func (s *Syncer) sync(ctx context.Context, mgrName, ep string) (Revision, error) {
	cl, err := s.client(ep)
	if err != nil {
		return Revision{}, err
	}
	info, err := cl.Latest(ctx, &depsyncpb.LatestRequest{})
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: Latest from %s: %w", mgrName, err)
	}
	rev, err := revOf(info)
	if err != nil || rev.IsZero() {
		return Revision{}, err
	}
	s.mu.Lock()
	cur, failed, dirty := s.cur, s.failed[rev.ID()], s.dirty
	s.mu.Unlock()
	switch {
	case rev.sameSlot(cur) && rev.Root == cur.Root && !dirty:
		return Revision{}, nil
	case rev.sameSlot(cur) && rev.Root != cur.Root:
		return Revision{}, fmt.Errorf("%w: %s from %s conflicts with the current %s", ErrFenced, rev, mgrName, cur)
	case rev.Before(cur):
		return Revision{}, fmt.Errorf("%w: %s from %s is older than the current %s", ErrFenced, rev.ID(), mgrName, cur.ID())
	case failed:
		return Revision{}, fmt.Errorf("%w: %s", ErrRevisionFailed, rev.ID())
	}
	pm, err := cl.Manifest(ctx, &depsyncpb.ManifestRequest{Epoch: rev.Epoch, Seq: rev.Seq}, grpc.MaxCallRecvMsgSize(manifestMaxBytes(s.lim)))
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: Manifest %s from %s: %w", rev.ID(), mgrName, err)
	}
	if pm.GetEpoch() != rev.Epoch || pm.GetSeq() != rev.Seq {
		return Revision{}, fmt.Errorf("%w: asked %s for manifest %s, got %d-%d", ErrBadHash, mgrName, rev.ID(), pm.GetEpoch(), pm.GetSeq())
	}
	m, err := fromProto(pm, s.lim)
	if err != nil {
		return Revision{}, err
	}
	if m.rev.Root != rev.Root {
		return Revision{}, fmt.Errorf("%w: manifest %s from %s does not match its announced root", ErrBadHash, rev.ID(), mgrName)
	}
	if err := s.checkSigned(m, mgrName); err != nil {
		return Revision{}, err
	}
	b, err := s.st.newBuild(m)
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: building %s: %w", m.rev.ID(), err)
	}
	defer b.abort()
	if err := s.fetch(ctx, m, b, mgrName, ep); err != nil {
		return Revision{}, err
	}
	if err := s.apply(ctx, m, true, b); err != nil {
		return Revision{}, err
	}
	return m.rev, nil
}

// manifestMaxBytes bounds the size of a manifest message by the limits.
func manifestMaxBytes(l limits) int {
	n := l.maxFiles*(4096+64) + 1024
	if n < 4<<20 {
		n = 4 << 20
	}
	return n
}
