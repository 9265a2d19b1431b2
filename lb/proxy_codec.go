package lb

import (
	"sync"

	"google.golang.org/grpc/encoding"
	// The proxy's codec falls back to grpc-go's proto codec, registered by
	// this package's init (grpc-go's, not ours).
	_ "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message on its way through the proxy: its encoded
// bytes, never parsed. It owns one reference to its buffers from the
// rawCodec's Unmarshal until the next Marshal hands them to grpc (which
// frees them once written), or until free.
type frame struct {
	data mem.BufferSlice
}

// free drops the frame's buffers, if it still holds them (a send that
// failed before it marshalled).
func (f *frame) free() {
	if f.data != nil {
		f.data.Free()
		f.data = nil
	}
}

// framePool keeps frames between calls, so that forwarding a call
// allocates none.
var framePool = sync.Pool{New: func() any { return new(frame) }}

func getFrame() *frame { return framePool.Get().(*frame) }

func putFrame(f *frame) {
	f.free()
	framePool.Put(f)
}

// rawCodec passes frames through untouched, in both directions, with no
// copy: Unmarshal keeps a reference to the received buffers and Marshal
// returns them. Anything else (the messages of services registered on
// the same server, health for one) goes to grpc-go's proto codec. It is
// set per server (grpc.ForceServerCodecV2) and per call
// (grpc.ForceCodecV2), never registered.
type rawCodec struct {
	proto encoding.CodecV2
}

func newRawCodec() rawCodec {
	return rawCodec{proto: encoding.GetCodecV2("proto")}
}

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		d := f.data
		f.data = nil // grpc owns it now
		return d, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.free()
		data.Ref() // grpc frees its own reference when Unmarshal returns
		f.data = data
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name is "proto": the content-subtype grpc-go sends upstream when the
// call does not name another (see Proxy).
func (rawCodec) Name() string { return "proto" }
