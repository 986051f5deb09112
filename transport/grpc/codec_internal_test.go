package grpc

import (
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/dcsync/dcsync/internal/wire"
)

func TestTieredPool(t *testing.T) {
	for _, c := range []struct{ n, cap int }{{0, 256}, {1, 256}, {256, 256}, {257, 512}, {100 << 10, 128 << 10}, {8 << 20, 8 << 20}, {8<<20 + 1, 8<<20 + 1}} {
		b := buffers.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.cap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", c.n, len(*b), cap(*b), c.cap)
		}
		buffers.Put(b)
	}
	foreign := make([]byte, 300)
	buffers.Put(&foreign) // not a tier size: dropped, not handed out as 512
	if b := buffers.Get(400); cap(*b) != 512 {
		t.Errorf("cap %d", cap(*b))
	}
}

func TestCodecRoundTrip(t *testing.T) {
	in := &wire.Envelope{Seq: 9, From: "unicom", Timestamp: 123, Nonce: make([]byte, 16), Body: make([]byte, 70000)}
	data, err := codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// gRPC hands a received message over in frames of up to 16 KiB.
	raw := data.Materialize()
	data.Free()
	var frames mem.BufferSlice
	for len(raw) > 0 {
		n := min(len(raw), 16<<10)
		frames = append(frames, mem.SliceBuffer(raw[:n]))
		raw = raw[n:]
	}
	var out wire.Envelope
	if err := (codec{}).Unmarshal(frames, &out); err != nil {
		t.Fatal(err)
	}
	if out.Seq != 9 || out.From != "unicom" || len(out.Body) != 70000 {
		t.Fatalf("%v", &out)
	}
	if _, err := (codec{}).Marshal("not a message"); err == nil {
		t.Fatal("marshalled a string")
	}
}
