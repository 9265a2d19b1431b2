package depsync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// source is a node to fetch blobs from.
type source struct {
	name, ep string
	manager  bool
}

// client returns a DepSync client for ep, dialing it once.
func (s *Syncer) client(ep string) (depsyncpb.DepSyncClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if c := s.conns[ep]; c != nil {
		return depsyncpb.NewDepSyncClient(c), nil
	}
	c, err := grpc.NewClient(ep, dialOptions(s.opts.DialOptions)...)
	if err != nil {
		return nil, fmt.Errorf("depsync: dialing %s: %w", ep, err)
	}
	s.conns[ep] = c
	return depsyncpb.NewDepSyncClient(c), nil
}

// sources returns where to fetch blobs from, in order: this node's parent
// in the distribution tree (if it is not the manager), then the manager.
//
// The tree: the alive members with a DepSync endpoint, except the active
// manager, sorted by name; the first fetches from the manager, member i>0
// from member (i-1)/FanOut. Every node computes it from its own view, so
// views that disagree only cost a fallback to the manager.
func (s *Syncer) sources(v *cluster.View, mgrName, mgrEp string) []source {
	mgr := source{name: mgrName, ep: mgrEp, manager: true}
	if s.opts.FanOut < 0 {
		return []source{mgr}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var fl []cluster.Member
	self := -1
	for _, m := range v.Members() {
		ep, ok := m.Endpoint(s.opts.Endpoint)
		if m.Status != cluster.StatusAlive || m.Name == mgrName || !ok || s.noDepsync[ep] {
			continue
		}
		if m.Name == s.n.Name() {
			self = len(fl)
		}
		fl = append(fl, m)
	}
	if self <= 0 {
		return []source{mgr}
	}
	p := fl[(self-1)/s.opts.FanOut]
	ep, _ := p.Endpoint(s.opts.Endpoint)
	return []source{{name: p.Name, ep: ep}, mgr}
}

// fetch brings every blob of m into the store, Parallel at a time, in
// manifest order (so that a peer fetching the same revision is a step
// ahead of the nodes that fetch from it). A blob of mode 0644 with no
// partial download is written straight into its place in the tree b and
// linked into the store once verified; others go through partial/.
func (s *Syncer) fetch(ctx context.Context, m *manifest, b *build, mgrName, mgrEp string) (err error) {
	seen := make(map[[32]byte]bool, len(m.files))
	var missing []int
	for i, f := range m.files {
		if seen[f.SHA256] {
			continue
		}
		seen[f.SHA256] = true
		if !s.st.hasFile(f) {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	srcs := s.sources(s.n.View(), mgrName, mgrEp)
	ctx, span := s.tr.Start(ctx, "depsync.Fetch", trace.WithAttributes(
		attribute.String("depsync.revision", m.rev.ID()), attribute.Int("depsync.blobs", len(missing)), attribute.String("depsync.source", srcs[0].name)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	// One goroutine creates the files, in manifest order, ahead of the
	// workers that fill them: a creation holds its directory's lock, so
	// more creators would only wait for each other. It runs up to a batch
	// per worker ahead, so that a worker finds a batch ready.
	jobs := make(chan job, s.opts.Parallel*batchBlobs)
	partials := s.st.partials()
	go func() {
		defer close(jobs)
		for _, i := range missing {
			if ctx.Err() != nil {
				return
			}
			d, err := s.openDownload(b, i, partials.mayHave(m.files[i].SHA256))
			if err != nil {
				fail(err)
				return
			}
			jobs <- job{i, d}
		}
	}()
	var wg sync.WaitGroup
	for range min(s.opts.Parallel, len(missing)) {
		wg.Go(func() {
			batch := make([]job, 0, batchBlobs)
			var carry *job
			for {
				batch = batch[:0]
				if carry != nil {
					batch, carry = append(batch, *carry), nil
				} else {
					j, ok := <-jobs
					if !ok {
						return
					}
					batch = append(batch, j)
				}
				batch, carry = s.fillBatch(b, batch, jobs)
				if ctx.Err() != nil {
					closeJobs(batch)
					continue
				}
				if err := s.fetchJobs(ctx, b, batch, srcs, m.rev); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// download is the file a blob is being received into, open across the
// sources fetchBlob tries, with the hash of what it holds.
type download struct {
	f      *os.File
	name   string
	inTree bool // at its place in the build tree, not in partial/
	h      hash.Hash
	have   int64
}

// openDownload opens the file blob i of the build is received into: the
// partial download of a previous attempt if there may be one (partial),
// else its place in the tree (mode 0644 only, since the tree file becomes
// the blob).
func (s *Syncer) openDownload(b *build, i int, partial bool) (*download, error) {
	f := b.m.files[i]
	d := &download{h: sha256.New(), name: s.st.partialPath(f.SHA256)}
	var pf *os.File
	err := fs.ErrNotExist
	if partial {
		pf, err = openFile(d.name, os.O_RDWR, 0)
	}
	switch {
	case err == nil:
		d.f = pf
		bp := ioBuffers.Get().(*[]byte)
		d.have, err = io.CopyBuffer(d.h, pf, *bp) // leaves the offset at the end
		ioBuffers.Put(bp)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("depsync: %w", err)
		}
		if d.have > f.Size {
			if err := d.reset(); err != nil {
				pf.Close()
				return nil, err
			}
		}
		return d, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("depsync: %w", err)
	case f.Mode == blobMode:
		d.name, d.inTree = b.path(i), true
	}
	d.f, err = openFile(d.name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("depsync: %w", err)
	}
	return d, nil
}

// reset empties the download.
func (d *download) reset() error {
	if err := d.f.Truncate(0); err != nil {
		return err
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	d.h.Reset()
	d.have = 0
	return nil
}

// fetchBlob fetches blob i of the build into d from the first source of
// srcs that has it; a source that fails falls back to the next, resuming
// where it stopped. A verified blob enters the store; an unfinished one is
// kept in partial/ for the next attempt. err is the error of an earlier
// source, returned if srcs is empty.
func (s *Syncer) fetchBlob(ctx context.Context, b *build, i int, d *download, srcs []source, rev Revision, err error) error {
	f := b.m.files[i]
	for j, src := range srcs {
		err = s.fetchFrom(ctx, f, d, src, rev)
		if err == nil {
			err = d.verify(f, src)
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrHashMismatch) {
			// The download may hold the bad bytes: start over.
			if rerr := d.reset(); rerr != nil {
				err = rerr
				break
			}
		}
		if status.Code(err) == grpccodes.Unimplemented {
			s.mu.Lock()
			s.noDepsync[src.ep] = true
			s.mu.Unlock()
		}
		if j < len(srcs)-1 {
			s.log.Debug("falling back", "path", f.Path, "from", src.name, "to", srcs[j+1].name, "err", err)
		}
	}
	if err == nil {
		err = s.complete(ctx, b, i, d)
		if err == nil {
			return nil
		}
	}
	s.abandon(f, d)
	return err
}

// verify checks that d holds blob f, as received from src.
func (d *download) verify(f File, src source) error {
	if d.have != f.Size || [32]byte(d.h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("%w: %q from %s", ErrHashMismatch, f.Path, src.name)
	}
	return nil
}

// complete puts the verified download d of blob i into the store.
func (s *Syncer) complete(ctx context.Context, b *build, i int, d *download) error {
	if err := s.finish(b.m.files[i], d); err != nil {
		return err
	}
	if d.inTree {
		b.done[i] = true
	}
	s.blobDone(b.m.files[i].SHA256)
	if s.opts.testAfterBlob != nil {
		s.opts.testAfterBlob(ctx)
	}
	return nil
}

// abandon closes a download that failed, keeping what came for the next
// round or a restart.
func (s *Syncer) abandon(f File, d *download) {
	d.f.Close()
	if d.inTree && d.have > 0 {
		os.Rename(d.name, s.st.partialPath(f.SHA256))
	}
}

// finish puts a verified download into the store.
func (s *Syncer) finish(f File, d *download) error {
	startWriteback(d.f)
	if err := d.f.Chmod(blobMode); err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	if d.inTree {
		// The tree file is the blob: one more name for it, in the store.
		if err := os.Link(d.name, s.st.blobPath(f.SHA256)); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("depsync: %w", err)
		}
		return nil
	}
	if err := os.Rename(d.name, s.st.blobPath(f.SHA256)); err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	return nil
}

// fetchFrom receives the rest of blob f from src into d, through one
// pooled buffer that is written out (and hashed) when full and at the end:
// a blob that fits it is written with one system call.
func (s *Syncer) fetchFrom(ctx context.Context, f File, d *download, src source, rev Revision) error {
	if d.have == f.Size {
		return nil
	}
	cl, err := s.client(src.ep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.Blob(ctx, &depsyncpb.BlobRequest{Sha256: f.SHA256[:], Offset: uint64(d.have), Epoch: rev.Epoch, Seq: rev.Seq}, grpc.ForceCodecV2(chunkCodec{}))
	if err != nil {
		return err
	}
	bp := ioBuffers.Get().(*[]byte)
	sink := chunkSink{buf: (*bp)[:0]}
	var got int64
	defer func() {
		if cap(sink.buf) == ioBuffer {
			*bp = sink.buf[:ioBuffer]
		}
		ioBuffers.Put(bp)
		s.countReceived(src, got)
	}()
	// flush writes what the buffer holds; the bytes count as received
	// once they are in the file.
	flush := func() error {
		if len(sink.buf) == 0 {
			return nil
		}
		if _, err := d.f.Write(sink.buf); err != nil {
			return fmt.Errorf("depsync: %w", err)
		}
		d.h.Write(sink.buf)
		d.have += int64(len(sink.buf))
		got += int64(len(sink.buf))
		sink.buf = sink.buf[:0]
		return nil
	}
	for {
		before := len(sink.buf)
		err := stream.RecvMsg(&sink)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		if d.have+int64(len(sink.buf)) > f.Size {
			sink.buf = sink.buf[:before]
			flush()
			return fmt.Errorf("%w: %q from %s is longer than its %d bytes", ErrHashMismatch, f.Path, src.name, f.Size)
		}
		if len(sink.buf) > cap(sink.buf)-maxMessage {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if d.have != f.Size {
		// A short stream (the peer went away) keeps what came: the next
		// source resumes from here.
		return fmt.Errorf("depsync: %q from %s: short blob, %d of %d bytes", f.Path, src.name, d.have, f.Size)
	}
	return nil
}

func (s *Syncer) countReceived(src source, n int64) {
	if n == 0 {
		return
	}
	s.recvMu.Lock()
	s.received[src.name] += n
	a := s.recvAttrs[src.name]
	if a == nil {
		kind := "peer"
		if src.manager {
			kind = "manager"
		}
		a = metric.WithAttributeSet(attribute.NewSet(
			attribute.String("node", s.n.Name()), attribute.String("source", src.name), attribute.String("source.kind", kind)))
		s.recvAttrs[src.name] = a
	}
	s.recvMu.Unlock()
	s.inst.received.Add(context.Background(), n, a)
}
