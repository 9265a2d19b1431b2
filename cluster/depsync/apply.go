package depsync

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// apply installs m, whose blobs are all present: tree (completing b, or
// a new one if b is nil), switch, hook, rollback on failure, gc. Caller
// holds s.op.
func (s *Syncer) apply(ctx context.Context, m *manifest, hook bool, b *build) error {
	id := m.rev.ID()
	if err := s.st.saveManifest(m); err != nil {
		return fmt.Errorf("depsync: saving manifest %s: %w", id, err)
	}
	var dir string
	var err error
	if b != nil {
		dir, err = b.commit()
	} else {
		dir, err = s.st.build(m)
	}
	if err != nil {
		return fmt.Errorf("depsync: building %s: %w", id, err)
	}
	s.mu.Lock()
	prev := s.cur
	s.manifests[id] = m
	s.mu.Unlock()
	if err := s.st.switchTo(id); err != nil {
		return fmt.Errorf("depsync: switching to %s: %w", id, err)
	}
	s.mu.Lock()
	s.cur, s.dirty = m.rev, false
	s.mu.Unlock()
	if hook && s.opts.Deploy != nil {
		if herr := s.deploy(ctx, m.rev, dir); herr != nil {
			return s.rollback(ctx, m.rev, prev, herr)
		}
	}
	s.log.Info("switched", "revision", m.rev.String(), "files", m.rev.Files, "bytes", m.rev.Size)
	s.report(ctx, m.rev)
	s.gc()
	return nil
}

func (s *Syncer) deploy(ctx context.Context, rev Revision, dir string) (err error) {
	ctx, span := s.tr.Start(ctx, "depsync.Deploy", trace.WithAttributes(attribute.String("depsync.revision", rev.ID())))
	defer span.End()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("deploy hook panicked: %v", r)
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}()
	return s.opts.Deploy(ctx, rev, dir)
}

// rollback switches back to prev after the hook failed on bad, marks bad
// failed and calls the hook for prev again.
func (s *Syncer) rollback(ctx context.Context, bad, prev Revision, herr error) error {
	s.log.Error("deploy hook failed; rolling back", "revision", bad.ID(), "to", prev.ID(), "err", herr)
	if err := s.st.markFailed(bad.ID()); err != nil {
		s.log.Error("marking revision failed", "revision", bad.ID(), "err", err)
	}
	prevID := ""
	if !prev.IsZero() {
		prevID = prev.ID()
	}
	if err := s.st.switchTo(prevID); err != nil {
		return fmt.Errorf("%w: %s: %v (and switching back to %s: %v)", ErrDeploy, bad.ID(), herr, prevID, err)
	}
	s.mu.Lock()
	s.cur = prev
	s.failed[bad.ID()] = true
	delete(s.manifests, bad.ID())
	s.mu.Unlock()
	s.st.removeTree(bad.ID())
	s.st.removeManifest(bad.ID())
	if prevID != "" && s.opts.Deploy != nil {
		if err := s.deploy(ctx, prev, s.st.treePath(prevID)); err != nil {
			s.log.Error("deploy hook failed on the previous revision too", "revision", prevID, "err", err)
		}
	}
	s.report(ctx, prev)
	return fmt.Errorf("%w: %s: %w", ErrDeploy, bad.ID(), herr)
}

// gc keeps the newest Keep revisions (current included), their blobs, and
// the failed marks newer than current. Caller holds s.op.
func (s *Syncer) gc() {
	s.mu.Lock()
	cur := s.cur
	ids := make([]string, 0, len(s.manifests))
	for id, m := range s.manifests {
		if !cur.Before(m.rev) { // never drop a revision newer than current
			ids = append(ids, id)
		}
	}
	sortIDs(ids)
	drop := map[string]bool{}
	if len(ids) > s.opts.Keep {
		for _, id := range ids[s.opts.Keep:] {
			if id != cur.ID() {
				drop[id] = true
				delete(s.manifests, id)
			}
		}
	}
	keepBlobs := map[[32]byte]bool{}
	for _, m := range s.manifests {
		for _, f := range m.files {
			keepBlobs[f.SHA256] = true
		}
	}
	for id := range s.failed {
		e, q, _ := parseID(id)
		if !cur.Before(Revision{Epoch: e, Seq: q}) {
			delete(s.failed, id)
			s.st.unmarkFailed(id)
		}
	}
	kept := make(map[string]bool, len(s.manifests))
	for id := range s.manifests {
		kept[id] = true
	}
	s.mu.Unlock()
	for id := range drop {
		s.st.removeManifest(id)
	}
	for _, id := range s.st.trees() {
		if !kept[id] {
			s.st.removeTree(id)
		}
	}
	s.st.gcBlobs(keepBlobs)
}

// Publish snapshots folder as a new revision and announces it. Only the
// active manager publishes: on any other node, or if the node stops being
// active meanwhile, it returns ErrNotActive. The revision is stamped with
