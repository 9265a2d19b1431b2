package depsync

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// service serves the DepSync gRPC service of a Syncer. It is a type of its
// own so that the handlers, whose types live in an internal package, are not
// part of the Syncer's API. Its errors: NotFound for a revision or a blob the
// node does not have, InvalidArgument for a malformed request, Unavailable
// after Close.
type service struct {
	depsyncpb.UnimplementedDepSyncServer
	s *Syncer
}

// Latest returns the node's current revision (on the active manager, the
// newest it published); an empty RevisionInfo if it has none.
func (sv *service) Latest(ctx context.Context, _ *depsyncpb.LatestRequest) (*depsyncpb.RevisionInfo, error) {
	s := sv.s
	if s.ctx.Err() != nil {
		return nil, status.Error(codes.Unavailable, ErrClosed.Error())
	}
	return infoOf(s.Current()), nil
}

// Manifest returns the manifest of a revision the node keeps.
func (sv *service) Manifest(ctx context.Context, req *depsyncpb.ManifestRequest) (*depsyncpb.RevisionManifest, error) {
	s := sv.s
	if s.ctx.Err() != nil {
		return nil, status.Error(codes.Unavailable, ErrClosed.Error())
	}
	id := Revision{Epoch: req.GetEpoch(), Seq: req.GetSeq()}.ID()
	s.mu.Lock()
	m := s.manifests[id]
	s.mu.Unlock()
	if m == nil {
		return nil, status.Errorf(codes.NotFound, "depsync: no revision %s here", id)
	}
	return m.toProto(), nil
}

// Blob streams a blob from req.Offset (see sendBlob).
func (sv *service) Blob(req *depsyncpb.BlobRequest, stream depsyncpb.DepSync_BlobServer) error {
	s := sv.s
	if s.ctx.Err() != nil {
		return status.Error(codes.Unavailable, ErrClosed.Error())
	}
	if len(req.GetSha256()) != sha256.Size {
		return status.Errorf(codes.InvalidArgument, "depsync: blob hash of %d bytes, want %d", len(req.GetSha256()), sha256.Size)
	}
	return s.sendBlob(stream, [32]byte(req.GetSha256()), req.GetOffset(), Revision{Epoch: req.GetEpoch(), Seq: req.GetSeq()})
}

// maxBatch is the most blobs a Blobs call may ask for.
const maxBatch = 64

// Blobs streams the blobs of req one after another, the first from
// req.Offset: one call for many small blobs saves a stream (headers, a
// goroutine, a file lookup on either side) per blob.
func (sv *service) Blobs(req *depsyncpb.BlobsRequest, stream depsyncpb.DepSync_BlobsServer) error {
	s := sv.s
	if s.ctx.Err() != nil {
		return status.Error(codes.Unavailable, ErrClosed.Error())
	}
	sums := req.GetSha256()
	if len(sums) == 0 || len(sums) > maxBatch {
		return status.Errorf(codes.InvalidArgument, "depsync: %d blobs asked for, want 1 to %d", len(sums), maxBatch)
	}
	for i, sum := range sums {
		if len(sum) != sha256.Size {
			return status.Errorf(codes.InvalidArgument, "depsync: hash %d of %d bytes, want %d", i, len(sum), sha256.Size)
		}
	}
	want := Revision{Epoch: req.GetEpoch(), Seq: req.GetSeq()}
	off := req.GetOffset()
	for _, sum := range sums {
		if err := s.sendBlob(stream, [32]byte(sum), off, want); err != nil {
			return err
		}
		off = 0
	}
	return nil
}

// sendBlob sends blob sum from off on stream. It reads Options.ChunkSize
// bytes at a time into a pooled buffer and sends them in messages of at
// most maxMessage bytes (see wire.go). A follower that lacks the blob but
// is behind the revision the caller fetches (want) starts a sync round and
// waits up to Options.PeerWait for the blob: that is what lets followers
// form a distribution tree instead of all fetching from the manager.
func (s *Syncer) sendBlob(stream grpc.ServerStreamingServer[depsyncpb.Chunk], sum [32]byte, off uint64, want Revision) error {
	f, err := openFile(s.st.blobPath(sum), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) && s.waitBlob(stream.Context(), sum, want) {
		f, err = openFile(s.st.blobPath(sum), os.O_RDONLY, 0)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return status.Errorf(codes.NotFound, "depsync: no blob %x here", sum[:8])
	}
	if err != nil {
		return status.Errorf(codes.Internal, "depsync: %v", err)
	}
	defer f.Close()
	if off > 0 {
		if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
			return status.Errorf(codes.InvalidArgument, "depsync: offset %d: %v", off, err)
		}
	}
	bp := ioBuffers.Get().(*[]byte)
	defer ioBuffers.Put(bp)
	buf := (*bp)[:min(s.opts.ChunkSize, len(*bp))]
	chunk := &depsyncpb.Chunk{}
	var sent int64
	defer func() {
		s.sent.Add(sent)
		s.inst.sent.Add(context.Background(), sent, s.sentAttrs)
	}()
	for {
		n, err := io.ReadFull(f, buf)
		for off := 0; off < n; {
			// SendMsg encodes the message before it returns, so buf is
			// reused safely.
			k := min(n-off, maxMessage)
			chunk.Data = buf[off : off+k]
			if err := stream.Send(chunk); err != nil {
				return err
			}
			off += k
			sent += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "depsync: %v", err)
		}
	}
}

// waitBlob waits for a blob the node is about to fetch, when the caller
// fetches a revision newer than this node's: it pokes the follow loop and
// waits up to PeerWait. It reports whether the blob is here.
func (s *Syncer) waitBlob(ctx context.Context, sum [32]byte, want Revision) bool {
	s.mu.Lock()
	behind := s.cur.Before(want) && !s.failed[want.ID()] && !s.closed
	var ch chan struct{}
	if behind {
		ch = make(chan struct{})
		s.waiters[sum] = append(s.waiters[sum], ch)
	}
	s.mu.Unlock()
	if !behind || s.n.Writable() {
		return false
	}
	defer s.dropWaiter(sum, ch)
	if s.st.hasBlob(sum) {
		return true
	}
	s.poke()
	t := time.NewTimer(s.opts.PeerWait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return s.st.hasBlob(sum)
}

func (s *Syncer) dropWaiter(sum [32]byte, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[sum]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, sum)
	} else {
		s.waiters[sum] = ws
	}
}

// blobDone wakes the peers waiting for sum.
func (s *Syncer) blobDone(sum [32]byte) {
	s.mu.Lock()
	ws := s.waiters[sum]
	delete(s.waiters, sum)
	s.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}
