package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcsync/dcsync"
)

func randomRequests(rng *rand.Rand, n int) []*dcsync.Request {
	reqs := make([]*dcsync.Request, n)
	for i := range reqs {
		r := &dcsync.Request{ID: fmt.Sprintf("id-%d", rng.Int()), Origin: "unicom", Key: fmt.Sprintf("key/%d/ключ", i),
			Op: "set", Version: rng.Uint64()}
		if rng.IntN(4) > 0 {
			r.Payload = make([]byte, rng.IntN(300))
			for j := range r.Payload {
				r.Payload[j] = byte(rng.Uint32())
			}
		}
		if rng.IntN(3) == 0 {
			r.Header = map[string]string{"traceparent": "00-abc-def-01", "tenant": fmt.Sprint(rng.IntN(9)), "": ""}
		}
		if rng.IntN(5) == 0 {
			r.Op, r.Version = "", 0
		}
		reqs[i] = r
	}
	return reqs
}

// same compares requests as the wire sees them: an empty payload or header
// equals a missing one.
func same(t *testing.T, got, want []*dcsync.Request) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := *got[i], *want[i]
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("request %d: payload %x, want %x", i, g.Payload, w.Payload)
		}
		if len(g.Header) == 0 && len(w.Header) == 0 {
			g.Header, w.Header = nil, nil
		}
		g.Payload, w.Payload = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("request %d: %+v, want %+v", i, g, w)
		}
	}
}

// The hand-written codec reads what protobuf-go writes and writes what it
// reads, for the schema in wire.proto.
func TestCodecMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 17, 300} {
		reqs := randomRequests(rng, n)
		ours := appendBatch(nil, reqs)
		var pb Batch
		if err := proto.Unmarshal(ours, &pb); err != nil {
			t.Fatal(err)
		}
		same(t, fromBatch(&pb), reqs)

		theirs, err := proto.Marshal(toBatch(reqs))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(theirs, Proto, Encoding_ENCODING_IDENTITY, 1<<30, n)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, reqs)
	}
}

func TestEncodeDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := randomRequests(rng, 100)
	for _, f := range []Format{Proto, JSON} {
		for _, enc := range []Encoding{Encoding_ENCODING_IDENTITY, Encoding_ENCODING_GZIP} {
			t.Run(fmt.Sprint(f, enc), func(t *testing.T) {
				body, err := Encode([]byte("prefix"), reqs, f, enc)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Decode(body[len("prefix"):], f, enc, 1<<20, 100)
				if err != nil {
					t.Fatal(err)
				}
				same(t, got, reqs)
				if _, err := Decode(body[len("prefix"):], f, enc, 1<<20, 99); !errors.Is(err, dcsync.ErrBatchTooLarge) {
					t.Fatalf("over MaxBatch: %v, want ErrBatchTooLarge", err)
				}
			})
		}
	}
}

// A small payload shares its allocation with the request's strings:
// appending to it, or writing it over, leaves them alone. The second
// request's header key is the only non-ASCII string, and the third's
// payload is too large to share.
func TestDecodeSharedAllocation(t *testing.T) {
	want := []*dcsync.Request{
		{ID: "id-1", Origin: "unicom", Key: "k1", Op: "set", Payload: []byte("small")},
		{ID: "id-2", Origin: "unicom", Key: "k2", Payload: []byte{}, Header: map[string]string{"ключ": "v"}},
		{ID: "id-3", Origin: "unicom", Key: "k3", Payload: make([]byte, smallPayload+1)},
	}
	body := appendBatch(nil, want)
	got, err := decodeBatch(body, len(want))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		r.Payload = append(r.Payload, "appended and over the strings"...)
		for j := range r.Payload {
			r.Payload[j] = 'x'
		}
		if r.ID != want[i].ID || r.Origin != "unicom" || r.Key != want[i].Key || r.Op != want[i].Op || len(r.Header) != len(want[i].Header) {
			t.Errorf("request %d became %+v", i, r)
		}
	}
	if got[1].Header["ключ"] != "v" {
		t.Errorf("header %v", got[1].Header)
	}
	if !isASCII("0123456789abcdef-x") || isASCII("0123456789abcdé") || isASCII("é") {
		t.Error("isASCII")
	}
}

func TestDecodeRefuses(t *testing.T) {
	reqs := randomRequests(rand.New(rand.NewPCG(5, 6)), 10)
	good := appendBatch(nil, reqs)
	zipped, err := Encode(nil, reqs, Proto, Encoding_ENCODING_GZIP)
	if err != nil {
		t.Fatal(err)
	}
	bomb, err := compress(nil, make([]byte, 1<<20)) // 1 MiB of zeros in about 1 KiB
	if err != nil {
		t.Fatal(err)
	}
	badUTF8 := appendBatch(nil, []*dcsync.Request{{ID: "a", Key: "\xff"}})
	for _, c := range []struct {
		name string
		body []byte
		enc  Encoding
		want error
	}{
		{"truncated", good[:len(good)-3], Encoding_ENCODING_IDENTITY, dcsync.ErrInvalid},
		{"garbage", []byte("not a protobuf at all"), Encoding_ENCODING_IDENTITY, dcsync.ErrInvalid},
		{"bad UTF-8", badUTF8, Encoding_ENCODING_IDENTITY, dcsync.ErrInvalid},
		{"not gzip", good, Encoding_ENCODING_GZIP, dcsync.ErrInvalid},
		{"truncated gzip", zipped[:len(zipped)/2], Encoding_ENCODING_GZIP, dcsync.ErrInvalid},
		{"gzip bomb", bomb, Encoding_ENCODING_GZIP, dcsync.ErrBatchTooLarge},
		{"unknown encoding", good, 7, dcsync.ErrInvalid},
	} {
		_, err := Decode(c.body, Proto, c.enc, 64<<10, 100)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCodes(t *testing.T) {
	for _, err := range []error{dcsync.ErrInvalid, dcsync.ErrTooLarge, dcsync.ErrBatchTooLarge, dcsync.ErrEmptyKey,
		dcsync.ErrUnauthenticated, dcsync.ErrUnknownPeer, dcsync.ErrForgedOrigin, dcsync.ErrInFlight} {
		back := Err(CodeOf(fmt.Errorf("wrapped: %w", err)), "msg")
		if !errors.Is(back, err) && !errors.Is(err, back.(*RemoteError).Unwrap()) {
			t.Errorf("%v came back as %v", err, back)
		}
		if dcsync.IsPermanent(back) != dcsync.IsPermanent(err) || CodeOf(err).Permanent() != dcsync.IsPermanent(err) {
			t.Errorf("%v: permanence lost on the wire", err)
		}
	}
	if back := Err(CodeOf(errors.New("disk full")), "disk full"); dcsync.IsPermanent(back) {
		t.Error("an unknown error became permanent")
	}
	if back := Err(CodeOf(dcsync.ErrClosed), "closed"); errors.Is(back, dcsync.ErrClosed) || dcsync.IsPermanent(back) {
		t.Error("a closed receiver must read as retryable, not as this syncer closed")
	}

	// A batch error travels request by request.
	be := &dcsync.BatchError{Errs: []error{nil, dcsync.ErrEmptyKey, errors.New("apply failed"), nil}}
	got := ErrorOf(ResultsOf(be), 4)
	var back *dcsync.BatchError
	if !errors.As(got, &back) || len(back.Errs) != 4 || back.Errs[0] != nil || back.Errs[3] != nil ||
		!errors.Is(back.Errs[1], dcsync.ErrInvalid) || dcsync.IsPermanent(back.Errs[2]) {
		t.Fatalf("batch error came back as %v", got)
	}
	if err := ErrorOf(ResultsOf(nil), 4); err != nil {
		t.Fatal(err)
	}
	if err := ErrorOf(&Results{Results: make([]*Result, 3)}, 4); err == nil || dcsync.IsPermanent(err) {
		t.Fatalf("mismatched results: %v, want a retryable error", err)
	}
}

func BenchmarkCodec(b *testing.B) {
	reqs := randomRequests(rand.New(rand.NewPCG(7, 8)), 256)
	for _, r := range reqs {
		r.Header = nil
	}
	body := appendBatch(nil, reqs)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(body))
		for b.Loop() {
			buf = appendBatch(buf[:0], reqs)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeBatch(body, len(reqs)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto-decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var pb Batch
			if err := proto.Unmarshal(body, &pb); err != nil {
				b.Fatal(err)
			}
			fromBatch(&pb)
		}
	})
}
