package depsync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
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
	c, err := grpc.NewClient(ep, s.opts.DialOptions...)
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
// ahead of the nodes that fetch from it).
func (s *Syncer) fetch(ctx context.Context, m *manifest, mgrName, mgrEp string) (err error) {
	seen := make(map[[32]byte]bool, len(m.files))
	var missing []File
	for _, f := range m.files {
		if seen[f.SHA256] {
			continue
		}
		seen[f.SHA256] = true
		if !s.st.hasBlob(f.SHA256) {
			missing = append(missing, f)
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
	work := make(chan File)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(s.opts.Parallel, len(missing)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := s.fetchBlob(ctx, f, srcs, m.rev); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	for _, f := range missing {
		select {
		case work <- f:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// fetchBlob fetches one blob from the first source that has it; a source
// that fails falls back to the next.
func (s *Syncer) fetchBlob(ctx context.Context, f File, srcs []source, rev Revision) error {
	var err error
	for i, src := range srcs {
		err = s.fetchFrom(ctx, f, src, rev)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, ErrHashMismatch) {
			// The partial file may hold the bad bytes: start over.
			os.Remove(s.st.partialPath(f.SHA256))
		}
		if status.Code(err) == grpccodes.Unimplemented {
			s.mu.Lock()
			s.noDepsync[src.ep] = true
			s.mu.Unlock()
		}
		if i < len(srcs)-1 {
			s.log.Debug("falling back", "path", f.Path, "from", src.name, "to", srcs[i+1].name, "err", err)
		}
	}
	return err
}

// fetchFrom fetches one blob from src, resuming a partial file, verifying
// size and hash before the blob appears in the store.
func (s *Syncer) fetchFrom(ctx context.Context, f File, src source, rev Revision) error {
	cl, err := s.client(src.ep)
	if err != nil {
		return err
	}
	pf, err := os.OpenFile(s.st.partialPath(f.SHA256), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	defer pf.Close()
	h := sha256.New()
	have, err := io.Copy(h, pf) // leaves the offset at the end
	if err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	if have > f.Size {
		if err := pf.Truncate(0); err != nil {
			return err
		}
		if _, err := pf.Seek(0, io.SeekStart); err != nil {
			return err
		}
		h.Reset()
		have = 0
	}
	if have < f.Size {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := cl.Blob(ctx, &depsyncpb.BlobRequest{Sha256: f.SHA256[:], Offset: uint64(have), Epoch: rev.Epoch, Seq: rev.Seq})
		if err != nil {
			return err
		}
		var got int64
		defer func() { s.countReceived(src, got) }()
		for {
			c, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if have+int64(len(c.GetData())) > f.Size {
				return fmt.Errorf("%w: %q from %s is longer than its %d bytes", ErrHashMismatch, f.Path, src.name, f.Size)
			}
			if _, err := pf.Write(c.GetData()); err != nil {
				return fmt.Errorf("depsync: %w", err)
			}
			h.Write(c.GetData())
			have += int64(len(c.GetData()))
			got += int64(len(c.GetData()))
		}
		if have != f.Size {
			// A short stream (the peer went away) keeps what came: the next
			// source resumes from here.
			return fmt.Errorf("depsync: %q from %s: short blob, %d of %d bytes", f.Path, src.name, have, f.Size)
		}
	}
	if [32]byte(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("%w: %q from %s", ErrHashMismatch, f.Path, src.name)
	}
	if err := pf.Chmod(blobMode); err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	if err := pf.Close(); err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	if err := os.Rename(s.st.partialPath(f.SHA256), s.st.blobPath(f.SHA256)); err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	s.blobDone(f.SHA256)
	if s.opts.testAfterBlob != nil {
		s.opts.testAfterBlob(ctx)
	}
	return nil
}

func (s *Syncer) countReceived(src source, n int64) {
	if n == 0 {
		return
	}
	s.recvMu.Lock()
	s.received[src.name] += n
	s.recvMu.Unlock()
	kind := "peer"
	if src.manager {
		kind = "manager"
	}
	s.inst.received.Add(context.Background(), n, metric.WithAttributes(
		attribute.String("node", s.n.Name()), attribute.String("source", src.name), attribute.String("source.kind", kind)))
}
