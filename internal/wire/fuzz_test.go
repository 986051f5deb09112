package wire

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcsync/dcsync"
)

// FuzzDecode holds the receiving side's decoder to protobuf-go: for any
// body, both accept it or both refuse it, and when they accept they read
// the same requests. Refusals must match dcsync.ErrInvalid. The seed corpus
// runs with every go test.
func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 3} {
		body := appendBatch(nil, randomRequests(rng, n))
		f.Add(body)
		if len(body) > 5 {
			f.Add(body[:len(body)-5])
			f.Add(append(body[:3:3], body[4:]...))
		}
	}
	f.Add([]byte("\x0a\x03\x0a\x01\xff"))              // a request whose ID is not UTF-8
	f.Add([]byte("\x0a\x05\x3a\x03\x0a\x01a"))         // a header entry with a key only
	f.Add([]byte("\x0a\x04\x30\x80\x80\x80"))          // a truncated varint
	f.Add([]byte("\x0b\x0c"))                          // a group
	f.Add([]byte("\x0a\x02\x0b\x0c\x12\x00"))          // a group inside a request
	f.Add([]byte("\x08\x01\x0a\x00"))                  // field 1 as a varint, then an empty request
	f.Add([]byte("\x0a\x03\x2a\x01x\x0a\x02\x32\x00")) // an empty-string payload field
	f.Fuzz(func(t *testing.T, body []byte) {
		ours, err := Decode(body, Proto, Encoding_ENCODING_IDENTITY, 1<<20, 1<<20)
		var pb Batch
		perr := proto.Unmarshal(body, &pb)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ours: %v; protobuf-go: %v", err, perr)
		}
		if err != nil {
			if !dcsync.IsPermanent(err) {
				t.Fatalf("refusal %v is retryable", err)
			}
			return
		}
		same(t, ours, fromBatch(&pb))
		// And what we read, we write back the same.
		again, err := Decode(appendBatch(nil, ours), Proto, Encoding_ENCODING_IDENTITY, 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		same(t, again, ours)
	})
}
