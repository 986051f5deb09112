package grpc

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codecName is the content-subtype of the replication stream: its own
// codec, registered under a name nothing else uses, so other services of
// the server keep gRPC's.
const codecName = "dcsync-proto"

func init() { encoding.RegisterCodecV2(codec{}) }

// codec is gRPC's protobuf codec with buffers from a pool of its own. The
// default pool rounds a batch of 100 KiB up to a 1 MiB buffer and zeroes
// all of it on every use, which cost more CPU than decoding the batch.
type codec struct{}

func (codec) Name() string { return codecName }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("dcsync/transport/grpc: cannot marshal %T", v)
	}
	buf := buffers.Get(proto.Size(m))
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		buffers.Put(buf)
		return nil, fmt.Errorf("dcsync/transport/grpc: marshal: %w", err)
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, buffers)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("dcsync/transport/grpc: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(buffers)
	defer buf.Free()
	if err := proto.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		return fmt.Errorf("dcsync/transport/grpc: unmarshal: %w", err)
	}
	return nil
}

// buffers is a mem.BufferPool with a tier at each power of two from 256
// bytes to 8 MiB that does not zero what it hands out: every user writes
// the whole length it asks for.
var buffers = &tieredPool{}

const minTier, maxTier = 8, 23

type tieredPool struct {
	tiers [maxTier + 1]sync.Pool
}

func (p *tieredPool) Get(n int) *[]byte {
	t := max(bits.Len(uint(max(n, 1)-1)), minTier)
	if t > maxTier {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<t)
	return &b
}

func (p *tieredPool) Put(b *[]byte) {
	c := cap(*b)
	t := bits.Len(uint(c)) - 1
	if c != 1<<t || t < minTier || t > maxTier {
		return // not one of ours
	}
	p.tiers[t].Put(b)
}
