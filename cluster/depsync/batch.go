package depsync

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// Batches: a follower asks its first source for the blobs its fetch
// workers find queued with one Blobs call, and falls back to fetchBlob
// (fetch.go) for what that call leaves undone.
// job is blob i of a build with the download it is received into.
type job struct {
	i int
	d *download
}

// How many blobs a follower asks a source for with one Blobs call, at
// most: a call per blob costs more than the bytes of a small one.
const (
	batchBlobs = 32
	batchBytes = 4 << 20
)

// fillBatch adds to batch the downloads jobs holds now, without waiting,
// up to batchBlobs blobs and batchBytes bytes. A partial download can
// only start a batch (the offset is the first blob's); one that comes
// later is returned as carry, to start the next.
func (s *Syncer) fillBatch(b *build, batch []job, jobs <-chan job) (_ []job, carry *job) {
	size := b.m.files[batch[0].i].Size - batch[0].d.have
	for len(batch) < batchBlobs && size < batchBytes {
		select {
		case j, ok := <-jobs:
			if !ok {
				return batch, nil
			}
			if j.d.have > 0 {
				return batch, &j
			}
			batch = append(batch, j)
			size += b.m.files[j.i].Size
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// closeJobs closes the downloads of jobs that will not be fetched.
func closeJobs(js []job) {
	for _, j := range js {
		j.d.f.Close()
	}
}

// fetchJobs fetches the blobs of js: all with one Blobs call to the first
// source if it serves them; what that call leaves undone goes blob by blob
// through fetchBlob, the blob it failed on from the next source.
func (s *Syncer) fetchJobs(ctx context.Context, b *build, js []job, srcs []source, rev Revision) error {
	done := 0
	if len(js) > 1 && !s.noBatch(srcs[0].ep) {
		n, err := s.fetchBatch(ctx, b, js, srcs[0], rev)
		done = n
		switch {
		case err == nil:
		case n == len(js):
			return err
		case ctx.Err() != nil:
			closeJobs(js[done:])
			return ctx.Err()
		case status.Code(err) == grpccodes.Unimplemented:
			// A peer without Blobs (or without DepSync: fetchBlob finds out).
			s.mu.Lock()
			s.noBatchEp[srcs[0].ep] = true
			s.mu.Unlock()
		default:
			j := js[done]
			s.log.Debug("falling back", "path", b.m.files[j.i].Path, "from", srcs[0].name, "err", err)
			if err := s.fetchBlob(ctx, b, j.i, j.d, srcs[1:], rev, err); err != nil {
				closeJobs(js[done+1:])
				return err
			}
			done++
		}
	}
	for k, j := range js[done:] {
		if err := s.fetchBlob(ctx, b, j.i, j.d, srcs, rev, nil); err != nil {
			closeJobs(js[done+k+1:])
			return err
		}
	}
	return nil
}

func (s *Syncer) noBatch(ep string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noBatchEp[ep]
}

// fetchBatch receives the blobs of js from src with one Blobs call, in
// order, each through one pooled buffer as fetchFrom does, and puts each
// into the store once it is complete and verified. It returns how many it
// is done with: on an error, n < len(js) means that js[n] failed at src
// (its download keeps what came of it, none if it was wrong) and those
// after it are untouched; n == len(js) means that the store failed and
// every download is closed.
func (s *Syncer) fetchBatch(ctx context.Context, b *build, js []job, src source, rev Revision) (n int, err error) {
	cl, err := s.client(src.ep)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &depsyncpb.BlobsRequest{Offset: uint64(js[0].d.have), Epoch: rev.Epoch, Seq: rev.Seq, Sha256: make([][]byte, len(js))}
	sums := make([]byte, 0, sha256.Size*len(js))
	for k, j := range js {
		sum := b.m.files[j.i].SHA256
		sums = append(sums, sum[:]...)
		req.Sha256[k] = sums[k*sha256.Size : (k+1)*sha256.Size]
	}
	stream, err := cl.Blobs(ctx, req, grpc.ForceCodecV2(chunkCodec{}))
	if err != nil {
		return 0, err
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
	d, f := js[0].d, b.m.files[js[0].i]
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
	for n < len(js) {
		// A blob of size 0 has no chunk.
		if d.have+int64(len(sink.buf)) < f.Size {
			err := stream.RecvMsg(&sink)
			if err == io.EOF {
				err = fmt.Errorf("depsync: %q from %s: short blob, %d of %d bytes", f.Path, src.name, d.have+int64(len(sink.buf)), f.Size)
			}
			if err != nil {
				if ferr := flush(); ferr != nil {
					return n, ferr
				}
				return n, err
			}
			if d.have+int64(len(sink.buf)) > f.Size {
				// A chunk holds bytes of one blob only: this source
				// sends something else.
				sink.buf = sink.buf[:0]
				if rerr := d.reset(); rerr != nil {
					return n, rerr
				}
				return n, fmt.Errorf("%w: %q from %s is longer than its %d bytes", ErrHashMismatch, f.Path, src.name, f.Size)
			}
			if d.have+int64(len(sink.buf)) < f.Size {
				if len(sink.buf) > cap(sink.buf)-maxMessage {
					if err := flush(); err != nil {
						return n, err
					}
				}
				continue
			}
		}
		if err := flush(); err != nil {
			return n, err
		}
		if err := d.verify(f, src); err != nil {
			if rerr := d.reset(); rerr != nil {
				return n, rerr
			}
			return n, err
		}
		if err := s.complete(ctx, b, js[n].i, d); err != nil {
			s.abandon(f, d)
			closeJobs(js[n+1:])
			return len(js), err
		}
		n++
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if n < len(js) {
			d, f = js[n].d, b.m.files[js[n].i]
		}
	}
	// The status, which follows the last chunk.
	stream.RecvMsg(&sink)
	return n, nil
}
