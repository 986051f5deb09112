package redis

import (
	"strconv"
	"testing"

	"github.com/dcsync/dcsync"
)

// FuzzDecodeFrames reads arbitrary batch entries, as a writer to the
// streams may craft them: never a panic, never more frames than the entry
// holds bytes, and an entry read is exactly the count it declares. The
// seed corpus runs with every go test.
func FuzzDecodeFrames(f *testing.F) {
	reqs := []*dcsync.Request{sampleRequest(), {ID: "a", Origin: "b", Key: "k", Version: 1}}
	f.Add("2", string(encodeBatch(nil, reqs)))
	f.Add("200000", "\x00\x00\x00\x00")
	f.Add("2", "\x07\x01\x05short\x01\x00")
	f.Add("-1", "")
	f.Add("1", "\xff\xff\xff\xff\x0fx")
	f.Fuzz(func(t *testing.T, count, data string) {
		frames, err := decodeFrames(map[string]any{fieldCount: count, fieldBatch: data})
		if err != nil {
			return
		}
		if n, _ := strconv.Atoi(count); n != len(frames) || len(frames) > len(data) || len(frames) > maxEntryRequests {
			t.Fatalf("count %q, %d bytes: %d frames", count, len(data), len(frames))
		}
		for i, fr := range frames {
			if (fr.req == nil) == (fr.err == nil) {
				t.Fatalf("frame %d: %+v", i, fr)
			}
		}
	})
}

// FuzzDeadLetter reads arbitrary dead-letter fields, as a writer to the
// dead-letter stream may leave them: never a panic.
func FuzzDeadLetter(f *testing.F) {
	f.Add("1-1", "collect:unicom", "3", "x", string(encode(sampleRequest())), sampleRequest().ID)
	f.Add("", "", "-9223372036854775808", "99999999999999999999", "\x01", "")
	f.Fuzz(func(t *testing.T, id, hop, deliveries, index, r, reqID string) {
		d := parseDeadLetter(id, map[string]any{fieldHop: hop, fieldDeliveries: deliveries, fieldIndex: index,
			fieldRequest: r, fieldID: reqID})
		if d.ID != id || d.Hop != hop || d.RequestID != reqID {
			t.Fatalf("%+v", d)
		}
		if d.Request != nil && d.Request.ID != reqID {
			t.Fatalf("request %q under id %q", d.Request.ID, reqID)
		}
	})
}
