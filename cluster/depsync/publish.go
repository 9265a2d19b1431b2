package depsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// than the newest revision's is ErrFenced. folder's files are copied into
// the blob store while they are hashed, so later edits of folder do not
// affect the revision. Symlinks and special files are refused
// (ErrNotRegular), as are revisions over the limits (ErrTooLarge); empty
// directories are not part of a revision. The deploy hook is not called on
// the manager.
func (s *Syncer) Publish(ctx context.Context, folder string) (Revision, error) {
	if !s.n.Writable() {
		return Revision{}, ErrNotActive
	}
	epoch := s.n.Epoch()
	s.op.Lock()
	defer s.op.Unlock()
	if s.ctx.Err() != nil {
		return Revision{}, ErrClosed
	}
	ctx, span := s.tr.Start(ctx, "depsync.Publish")
	defer span.End()
	rev, err := s.publish(ctx, folder, epoch)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return Revision{}, err
	}
	span.SetAttributes(attribute.String("depsync.revision", rev.ID()), attribute.Int("depsync.files", rev.Files), attribute.Int64("depsync.bytes", rev.Size))
	// Followers do not trust the message: it only makes them ask the
	// active manager for its latest revision now.
	if err := s.n.Broadcast(ctx, MessageName, []byte(rev.ID())); err != nil {
		s.log.Warn("announcing revision", "revision", rev.ID(), "err", err)
	}
	return rev, nil
}

func (s *Syncer) publish(ctx context.Context, folder string, epoch uint64) (Revision, error) {
	last := s.newest()
	if epoch < last.Epoch {
		return Revision{}, fmt.Errorf("%w: epoch %d is older than revision %s", ErrFenced, epoch, last.ID())
	}
	folder, err := filepath.EvalSymlinks(folder)
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: publish: %w", err)
	}
	// First the list, checked against the limits by the sizes the folder
	// reports, then the snapshot of every file into the blob store,
	// Parallel at a time.
	type entry struct {
		rel, path string
		mode      fs.FileMode
	}
	var ents []entry
	var listed int64
	err = filepath.WalkDir(folder, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(folder, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %q is a %v", ErrNotRegular, rel, d.Type())
		}
		if len(ents) >= s.lim.maxFiles {
			return fmt.Errorf("%w: more than %d files", ErrTooLarge, s.lim.maxFiles)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > s.lim.maxFile {
			return fmt.Errorf("%w: %q is over %d bytes", ErrTooLarge, rel, s.lim.maxFile)
		}
		if listed += fi.Size(); listed > s.lim.maxTotal {
			return fmt.Errorf("%w: total over %d bytes at %q", ErrTooLarge, s.lim.maxTotal, rel)
		}
		ents = append(ents, entry{rel: rel, path: p, mode: fi.Mode().Perm()})
		return nil
	})
	if err != nil {
		return Revision{}, err
	}
	// The snapshot's files are made in a directory of this publish (see
	// spreadDirs), then renamed into the store.
	work, err := os.MkdirTemp(filepath.Join(s.st.root, "tmp"), "publish-")
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: publish: %w", err)
	}
	defer removeAll(work)
	type result struct {
		sum   [32]byte
		size  int64
		isNew bool
		err   error
	}
	res := make([]result, len(ents))
	ok := false
	defer func() {
		// A refused publish leaves the store as it found it.
		if !ok {
			for _, r := range res {
				if r.isNew {
					os.Remove(s.st.blobPath(r.sum))
				}
			}
		}
	}()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s.opts.Parallel, len(ents)) {
		wg.Go(func() {
			for i := range next {
				r := &res[i]
				f, err := openFile(ents[i].path, os.O_RDONLY, 0)
				if err != nil {
					r.err = err
					continue
				}
				r.sum, r.size, r.isNew, r.err = s.st.putBlob(f, work, s.lim.maxFile, ents[i].rel)
				f.Close()
			}
		})
	}
	for i := range ents {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Revision{}, err
	}
	files := make([]File, len(ents))
	var total int64
	for i, r := range res {
		rel := ents[i].rel
		if r.err != nil {
			if errors.Is(r.err, ErrTooLarge) {
				return Revision{}, fmt.Errorf("%w: %q is over %d bytes", ErrTooLarge, rel, s.lim.maxFile)
			}
			return Revision{}, fmt.Errorf("depsync: snapshot of %q: %w", rel, r.err)
		}
		if total += r.size; total > s.lim.maxTotal {
			return Revision{}, fmt.Errorf("%w: total over %d bytes at %q", ErrTooLarge, s.lim.maxTotal, rel)
		}
		files[i] = File{Path: rel, Mode: ents[i].mode, Size: r.size, SHA256: r.sum}
	}
	sorted, err := validate(files, s.lim)
	if err != nil {
		return Revision{}, err
	}
	m := &manifest{files: sorted, rev: Revision{Epoch: epoch, Seq: last.Seq + 1, Root: rootHash(sorted), Files: len(sorted), Size: total}}
	if err := s.sign(m); err != nil {
		return Revision{}, err
	}
	// The snapshot took time: publish only if still active in this epoch.
	if !s.n.Writable() || s.n.Epoch() != epoch {
		return Revision{}, fmt.Errorf("%w: lost the active role during the snapshot", ErrNotActive)
	}
	if err := s.apply(ctx, m, false, nil); err != nil {
		return Revision{}, err
	}
	ok = true
	s.log.Info("published", "revision", m.rev.String(), "files", m.rev.Files, "bytes", m.rev.Size)
	return m.rev, nil
}

// newest is the newest revision this node knows: current, or a newer
// kept one (a failed one included, so that sequence numbers never repeat).
func (s *Syncer) newest() Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.cur
	for _, m := range s.manifests {
		if n.Before(m.rev) {
			n = m.rev
		}
	}
	for id := range s.failed {
		e, q, _ := parseID(id)
		if r := (Revision{Epoch: e, Seq: q}); n.Before(r) {
			n = r
		}
	}
	return n
}
