package depsync

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// TestChunkCodec: chunkCodec decodes what a proto server sends, however
// gRPC splits it into buffers, and falls back to protobuf for encodings
// other than the one field it expects.
func TestChunkCodec(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 3000)
	plain, err := proto.Marshal(&depsyncpb.Chunk{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	// An unknown field after the data: a newer server.
	extra := protowire.AppendTag(append([]byte(nil), plain...), 9, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 7)
	for _, c := range []struct {
		name string
		wire []byte
	}{{"plain", plain}, {"unknown field", extra}} {
		for _, cut := range []int{0, 1, 2, 3, 100, len(c.wire) - 1} {
			bs := mem.BufferSlice{mem.SliceBuffer(c.wire[:cut]), mem.SliceBuffer(c.wire[cut:])}
			sink := chunkSink{buf: []byte("kept:")}
			if err := (chunkCodec{}).Unmarshal(bs, &sink); err != nil {
				t.Fatalf("%s cut at %d: %v", c.name, cut, err)
			}
			if want := append([]byte("kept:"), data...); !bytes.Equal(sink.buf, want) {
				t.Fatalf("%s cut at %d: decoded %d bytes, want %d", c.name, cut, len(sink.buf), len(want))
			}
		}
	}
	var sink chunkSink
	if err := (chunkCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x80})}, &sink); err == nil {
		t.Fatal("a truncated chunk decoded without error")
	}
	if err := (chunkCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(plain)}, &depsyncpb.Chunk{}); err == nil {
		t.Fatal("decoding into another type did not fail")
	}
}

// TestDirtyPool: buffers come back with the length asked for and a
// power-of-two capacity, and are reused.
func TestDirtyPool(t *testing.T) {
	p := dirtyPool{}
	for _, n := range []int{0, 1, 256, 257, 16 << 10, 32<<10 - 16, 1 << 20, 5 << 20} {
		b := p.Get(n)
		if len(*b) != n || cap(*b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*b), cap(*b))
		}
		if n <= 1<<maxClass && cap(*b)&(cap(*b)-1) != 0 {
			t.Fatalf("Get(%d): capacity %d is not a power of two", n, cap(*b))
		}
		p.Put(b)
	}
}
