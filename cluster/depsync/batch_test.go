package depsync_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/internal/depsyncpb"
	"github.com/carbonkit/carbon/internal/wait"
	"github.com/carbonkit/carbon/role"
)

// batchPeer is a follower's parent in the distribution tree that serves
// blobs from a table and misbehaves in Blobs calls as its mode says:
//   - "old": has no Blobs (a peer of an earlier version);
//   - "corrupt": sends the second blob of a call with one byte flipped,
//     and ends the call;
//   - "cut": sends half of the second blob of a call, then fails.
//
// Both methods wait until ready holds, so that the follower has queued
// the rest of the revision and asks for it with one call.
type batchPeer struct {
	depsyncpb.UnimplementedDepSyncServer
	mode  string
	blobs map[[32]byte][]byte
	ready func() bool

	mu     sync.Mutex
	sent   int64 // bytes sent
	faults int   // Blobs calls it misbehaved in
}

func (p *batchPeer) waitReady(ctx context.Context) error {
	if err := wait.Until(ctx, 2*time.Millisecond, p.ready); err != nil {
		return status.Error(codes.Unavailable, "not ready")
	}
	return nil
}

func (p *batchPeer) send(st grpc.ServerStreamingServer[depsyncpb.Chunk], b []byte) error {
	p.mu.Lock()
	p.sent += int64(len(b))
	p.mu.Unlock()
	return st.Send(&depsyncpb.Chunk{Data: b})
}

func (p *batchPeer) Blob(req *depsyncpb.BlobRequest, st depsyncpb.DepSync_BlobServer) error {
	if err := p.waitReady(st.Context()); err != nil {
		return err
	}
	b, ok := p.blobs[[32]byte(req.GetSha256())]
	if !ok {
		return status.Error(codes.NotFound, "no")
	}
	return p.send(st, b[req.GetOffset():])
}

func (p *batchPeer) Blobs(req *depsyncpb.BlobsRequest, st depsyncpb.DepSync_BlobsServer) error {
	if p.mode == "old" {
		return p.UnimplementedDepSyncServer.Blobs(req, st)
	}
	if err := p.waitReady(st.Context()); err != nil {
		return err
	}
	off := req.GetOffset()
	for i, sum := range req.GetSha256() {
		b, ok := p.blobs[[32]byte(sum)]
		if !ok {
			return status.Error(codes.NotFound, "no")
		}
		b = b[off:]
		off = 0
		if i == 1 {
			p.mu.Lock()
			p.faults++
			p.mu.Unlock()
			switch p.mode {
			case "corrupt":
				// The follower stops reading at a wrong blob: what
				// the peer sent after it would not be received.
				b = append([]byte(nil), b...)
				b[len(b)/2] ^= 0xff
				return p.send(st, b)
			case "cut":
				if err := p.send(st, b[:len(b)/2]); err != nil {
					return err
				}
				return status.Error(codes.Unavailable, "going away")
			}
		}
		if err := p.send(st, b); err != nil {
			return err
		}
	}
	return nil
}

// TestBatchFallsBack: a follower fetches many blobs with one Blobs call
// from its parent in the tree; a parent without Blobs is asked blob by
// blob, a blob that comes wrong is fetched whole from the manager, and
// one cut short is resumed from the manager where it stopped. Every byte
// is received once, except the wrong ones.
func TestBatchFallsBack(t *testing.T) {
	const files, size = 8, 16 << 10
	for i, mode := range []string{"old", "corrupt", "cut"} {
		t.Run(mode, func(t *testing.T) {
			domain := "depsync.batch." + mode
			src := t.TempDir()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			blobs := map[[32]byte][]byte{}
			for k := range files {
				b := make([]byte, size)
				for j := range b {
					b[j] = byte(r.Uint32())
				}
				blobs[sha256.Sum256(b)] = b
				if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", k)), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := startNode(t, nodeCfg{domain: domain, name: "m1", role: role.Manager})
			waitActive(t, m)
			var w *tnode
			var rev depsync.Revision
			var revMu sync.Mutex
			p := &batchPeer{mode: mode, blobs: blobs, ready: func() bool {
				// Every file of the revision is queued (created in the
				// tree being built), or the follower is done.
				revMu.Lock()
				defer revMu.Unlock()
				if w == nil || rev.IsZero() {
					return false
				}
				got, _ := filepath.Glob(filepath.Join(w.dir, "tmp", "tree-*", "f*"))
				return len(got) == files || w.s.Current() == rev
			}}
			// "a0" sorts before "w0": it is w0's parent in the tree.
			a := startNode(t, nodeCfg{domain: domain, name: "a0", role: role.Worker, seed: m.seed(),
				register: func(s *grpc.Server) { depsyncpb.RegisterDepSyncServer(s, p) }})
			wn := startNode(t, nodeCfg{domain: domain, name: "w0", role: role.Worker, seed: m.seed(),
				opts: depsync.Options{Parallel: 1}})
			revMu.Lock()
			w = wn
			revMu.Unlock()
			waitConverged(t, 3, m, a, wn)

			got, err := m.s.Publish(context.Background(), src)
			if err != nil {
				t.Fatal(err)
			}
			revMu.Lock()
			rev = got
			revMu.Unlock()
			waitRevision(t, rev, wn)
			sameFiles(t, src, wn)

			st := wn.s.Stats()
			p.mu.Lock()
			sent, faults := p.sent, p.faults
			p.mu.Unlock()
			if st.BytesReceived["a0"] != sent {
				t.Errorf("received %d bytes from the peer, which sent %d", st.BytesReceived["a0"], sent)
			}
			var fromManager int64
			switch mode {
			case "old":
				if faults != 0 {
					t.Fatalf("an old peer served %d Blobs calls", faults)
				}
			case "corrupt":
				fromManager = int64(faults) * size
			case "cut":
				fromManager = int64(faults) * size / 2
			}
			if mode != "old" && faults == 0 {
				t.Fatal("no Blobs call asked for two blobs or more")
			}
			if st.BytesReceived["m1"] != fromManager {
				t.Errorf("received %d bytes from the manager, want %d (%d faults of the peer)", st.BytesReceived["m1"], fromManager, faults)
			}
			if total := st.BytesReceived["a0"] + st.BytesReceived["m1"]; mode != "corrupt" && total != files*size {
				t.Errorf("received %d bytes in all, want the %d of the revision once", total, files*size)
			}
		})
	}
}

// TestBlobsRefusesBadRequests: a Blobs call that asks for no blob, too
// many, or names one by a malformed hash is refused with InvalidArgument,
// and one for a blob the node lacks ends with NotFound.
func TestBlobsRefusesBadRequests(t *testing.T) {
	m := startNode(t, nodeCfg{domain: "depsync.blobsreq", name: "m1", role: role.Manager})
	waitActive(t, m)
	ep, _ := m.n.Self().Endpoint("grpc")
	cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := depsyncpb.NewDepSyncClient(cc)
	sum := sha256.Sum256([]byte("absent"))
	many := make([][]byte, 65)
	for i := range many {
		many[i] = sum[:]
	}
	for _, c := range []struct {
		name string
		req  *depsyncpb.BlobsRequest
		code codes.Code
		says string
	}{
		{"none", &depsyncpb.BlobsRequest{}, codes.InvalidArgument, "0 blobs"},
		{"too many", &depsyncpb.BlobsRequest{Sha256: many}, codes.InvalidArgument, "65 blobs"},
		{"short hash", &depsyncpb.BlobsRequest{Sha256: [][]byte{sum[:], {1, 2}}}, codes.InvalidArgument, "hash 1 of 2 bytes"},
		{"absent", &depsyncpb.BlobsRequest{Sha256: [][]byte{sum[:]}}, codes.NotFound, "no blob"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := cl.Blobs(context.Background(), c.req)
			if err == nil {
				_, err = st.Recv()
			}
			if status.Code(err) != c.code || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Blobs: %v, want %v saying %q", err, c.code, c.says)
			}
		})
	}
}
