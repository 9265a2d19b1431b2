package depsync

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// How blob bytes travel. grpc-go's default buffer pool zeroes every buffer
// it hands out, rounded up to its size class (a 64 KiB message costs the
// zeroing of 1 MiB), and protobuf allocates a fresh slice for every bytes
// field it decodes. So:
//   - a server sends messages of at most maxMessage bytes, which fit the
//     32 KiB class of the default pool (the server's pool is its owner's);
//   - a follower dials with its own pool, which does not zero (gRPC only
//     reads what it wrote), and decodes Blob chunks with chunkCodec straight
//     into its write buffer.

// maxMessage is the largest blob payload of one Chunk a server sends: the
// encoded message (tag and length prefix included) stays within 32 KiB.
const maxMessage = 32<<10 - 16

// ioBuffer is the size of the buffers blobs are read and written through:
// a file that fits is read or written with one system call.
const ioBuffer = 1 << 20

// ioBuffers pools the read and write buffers of blobs.
var ioBuffers = sync.Pool{New: func() any { b := make([]byte, ioBuffer); return &b }}

// dialOptions are the transport settings of the connections a follower
// opens, before the user's Options.DialOptions (which win): large flow
// control windows and read buffer, so that a stream is not paced by window
// updates on a fast network, and the non-zeroing pool.
func dialOptions(user []grpc.DialOption) []grpc.DialOption {
	o := []grpc.DialOption{
		grpc.WithInitialWindowSize(8 << 20),
		grpc.WithInitialConnWindowSize(32 << 20),
		grpc.WithReadBufferSize(256 << 10),
		experimental.WithBufferPool(dirtyPool{}),
	}
	return append(o, user...)
}

// dirtyPool is a mem.BufferPool in power-of-two classes from 256 B to
// 4 MiB that does not zero what it hands out.
type dirtyPool struct{}

const (
	minClass = 8  // 256 B
	maxClass = 22 // 4 MiB
)

var dirtyClasses [maxClass + 1]sync.Pool

func (dirtyPool) Get(n int) *[]byte {
	c := classOf(n)
	if c > maxClass {
		b := make([]byte, n)
		return &b
	}
	if p, ok := dirtyClasses[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<c)
	return &b
}

func (dirtyPool) Put(p *[]byte) {
	c := cap(*p)
	if c < 1<<minClass || c > 1<<maxClass || c&(c-1) != 0 {
		return
	}
	dirtyClasses[bits.Len(uint(c))-1].Put(p)
}

// classOf is the smallest class whose buffers hold n bytes.
func classOf(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

// chunkSink is what a follower receives a Blob chunk into: the chunk's
// bytes are appended to buf.
type chunkSink struct {
	buf []byte
}

// chunkCodec is the codec of a follower's Blob calls (a call option, so
// nothing is registered globally). It names itself "proto", so the server
// decodes the request and encodes its chunks with its own proto codec: the
// bytes on the wire are the protobuf encoding of the service. It decodes a
// Chunk by appending its data to a chunkSink, without the intermediate
// slice protobuf would allocate.
type chunkCodec struct{}

func (chunkCodec) Name() string { return "proto" }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("depsync: cannot encode %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	sink, ok := v.(*chunkSink)
	if !ok {
		return fmt.Errorf("depsync: cannot decode into %T", v)
	}
	total := data.Len()
	if total == 0 {
		return nil // a Chunk with no data
	}
	// The fast path: the message is exactly field 1 (data), as our servers
	// send it: tag 0x0a, the length as a varint, the bytes.
	var hdr [1 + binary.MaxVarintLen64]byte
	h := 0
	for _, b := range data {
		h += copy(hdr[h:], b.ReadOnlyData())
		if h == len(hdr) {
			break
		}
	}
	if hdr[0] == 0x0a {
		if l, k := binary.Uvarint(hdr[1:h]); k > 0 && uint64(total) == 1+uint64(k)+l {
			skip := 1 + k
			for _, b := range data {
				d := b.ReadOnlyData()
				if skip >= len(d) {
					skip -= len(d)
					continue
				}
				sink.buf = append(sink.buf, d[skip:]...)
				skip = 0
			}
			return nil
		}
	}
	// Anything else (unknown fields, another field order) is decoded by
	// protobuf.
	var c depsyncpb.Chunk
	if err := proto.Unmarshal(data.Materialize(), &c); err != nil {
		return err
	}
	sink.buf = append(sink.buf, c.GetData()...)
	return nil
}
