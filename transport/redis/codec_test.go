package redis

import (
	"errors"
	"reflect"
	"testing"

	"github.com/dcsync/dcsync"
)

func sampleRequest() *dcsync.Request {
	return &dcsync.Request{ID: "0198f0c2-7a51-7d4e-9b1a-3c5d7e9f1a2b", Origin: "unicom", Key: "user:42",
		Op: "set", Payload: []byte("hello"), Version: 1<<62 + 12345,
		Header: map[string]string{"traceparent": "00-abc-def-01", "tenant": "t1"}}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, req := range []*dcsync.Request{
		sampleRequest(),
		{ID: "a", Origin: "b", Key: "k", Version: 1}, // no op, payload or header
	} {
		values := entryValues(nil, req)
		fields := map[string]any{}
		for i := 0; i < len(values); i += 2 {
			v := values[i+1]
			if b, ok := v.([]byte); ok {
				v = string(b) // as Redis returns it
			}
			fields[values[i].(string)] = v
		}
		got, err := decodeEntry(fields)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, req)
		}
	}
}

func TestCodecRejectsMalformed(t *testing.T) {
	full := string(encode(sampleRequest()))
	// Every truncation, and every single corrupted byte, is an error or
	// another valid request, never a panic.
	for i := range len(full) {
		if _, err := decode(full[:i]); !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated to %d bytes: err %v, want ErrMalformed", i, err)
		}
		for _, c := range []byte{0, 0x7f, 0x80, 0xff} {
			b := []byte(full)
			b[i] = c
			_, _ = decode(string(b))
		}
	}
	for name, fields := range map[string]map[string]any{
		"no request":       {"id": "x"},
		"not a string":     {"id": "x", "r": 7},
		"unknown version":  {"id": "x", "r": "\x09abc"},
		"trailing bytes":   {"id": sampleRequest().ID, "r": full + "x"},
		"ID differs":       {"id": "other", "r": full},
		"huge header":      {"id": "", "r": "\x01\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff\x0f"},
		"huge string":      {"id": "", "r": "\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"},
		"overlong varint":  {"id": "", "r": "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"},
		"empty":            {},
		"garbage from cli": {"id": "x", "r": "garbage"},
	} {
		if _, err := decodeEntry(fields); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(string(encode(sampleRequest())))
	f.Add("\x01")
	f.Fuzz(func(t *testing.T, data string) {
		req, err := decode(data)
		if err != nil {
			return
		}
		if again, err := decode(string(encode(req))); err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("re-encoding %+v: %+v, %v", req, again, err)
		}
	})
}

func TestBatchCodec(t *testing.T) {
	reqs := []*dcsync.Request{sampleRequest(), {ID: "a", Origin: "b", Key: "k", Version: 1}}
	values := batchValues(len(reqs), encodeBatch(nil, reqs))
	fields := map[string]any{fieldCount: "2", fieldBatch: string(values[3].([]byte))}
	frames, err := decodeFrames(fields)
	if err != nil || len(frames) != 2 {
		t.Fatalf("decodeFrames: %+v, %v", frames, err)
	}
	for i, f := range frames {
		again, err := decode(f.raw) // the header's order varies between encodings
		if f.err != nil || !reflect.DeepEqual(f.req, reqs[i]) || err != nil || !reflect.DeepEqual(again, reqs[i]) {
			t.Errorf("frame %d: %+v", i, f)
		}
	}
	blob := fields[fieldBatch].(string)
	for name, fields := range map[string]map[string]any{
		"no count":        {fieldBatch: blob},
		"count too high":  {fieldCount: "3", fieldBatch: blob},
		"count too low":   {fieldCount: "1", fieldBatch: blob},
		"count not a num": {fieldCount: "two", fieldBatch: blob},
		"zero count":      {fieldCount: "0", fieldBatch: ""},
		"no batch":        {fieldCount: "2"},
		"huge frame":      {fieldCount: "1", fieldBatch: "\xff\xff\xff\xff\x0fx"},
	} {
		if _, err := decodeFrames(fields); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
	// A request that cannot be decoded fails alone.
	bad := appendFrame(appendFrame(nil, "\x01\x05short"), string(encode(reqs[1])))
	frames, err = decodeFrames(map[string]any{fieldCount: "2", fieldBatch: string(bad)})
	if err != nil || len(frames) != 2 || !errors.Is(frames[0].err, ErrMalformed) || frames[1].err != nil ||
		frames[1].req.ID != "a" {
		t.Errorf("batch with a bad request: %+v, %v", frames, err)
	}
}
