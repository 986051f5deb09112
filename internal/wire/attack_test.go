package wire

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dcsync/dcsync"
)

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A JSON body of a million empty requests is refused before it is decoded:
// it once cost fifty times its size.
func TestJSONCountedFirst(t *testing.T) {
	body := []byte(`{"requests":[` + string(bytes.Repeat([]byte(`{},`), 1_000_000)) + `{}]}`)
	var err error
	n := allocated(func() { _, err = Decode(body, JSON, Encoding_ENCODING_IDENTITY, 16<<20, 4096) })
	if !errors.Is(err, dcsync.ErrBatchTooLarge) {
		t.Fatalf("%v, want ErrBatchTooLarge", err)
	}
	if n > 64<<10 {
		t.Fatalf("refusing a %d-byte body allocated %d bytes", len(body), n)
	}
	for _, c := range []struct {
		json string
		want int
	}{
		{`{"requests":[]}`, 0},
		{`{"requests":[{"id":"a,{b}[","header":{"x":"[{,"}}, {} ,null,"s"]}`, 4},
		{` { "requests" : [ { } ] } `, 1},
		{`{"requests":[{"id":"\"],"}]}`, 1},
	} {
		if got := countJSON([]byte(c.json)); got != c.want {
			t.Errorf("countJSON(%s) = %d, want %d", c.json, got, c.want)
		}
	}
}

// The worst bodies within the limits — requests full of tiny distinct
// header entries, in both formats — decode within a small multiple of
// their size.
func TestDecodeMemoryBound(t *testing.T) {
	const maxBody = 1 << 20
	var js, pb []byte
	js = append(js, `{"requests":[{"id":"a","header":{`...)
	var entries []byte
	for i := 0; len(entries) < maxBody-64; i++ {
		k := fmt.Sprintf("%x", i)
		if i > 0 {
			js = append(js, ',')
		}
		js = append(js, fmt.Sprintf("%q:%q", k, "")...)
		e := protowire.AppendTag(nil, fieldMapKey, protowire.BytesType)
		e = protowire.AppendString(e, k)
		entries = protowire.AppendTag(entries, fieldHeader, protowire.BytesType)
		entries = protowire.AppendBytes(entries, e)
	}
	js = append(js, `}}]}`...)
	pb = protowire.AppendTag(pb, fieldBatch, protowire.BytesType)
	pb = protowire.AppendBytes(pb, entries)
	for _, c := range []struct {
		name string
		f    Format
		body []byte
	}{{"protobuf", Proto, pb}, {"json", JSON, js[:min(len(js), 2*maxBody)]}} {
		if len(c.body) > 2*maxBody {
			t.Fatalf("%s: body of %d", c.name, len(c.body))
		}
		var err error
		n := allocated(func() { _, err = Decode(c.body, c.f, Encoding_ENCODING_IDENTITY, 8*maxBody, 4096) })
		t.Logf("%s: %d-byte body, %d bytes allocated (%.1fx), %v", c.name, len(c.body), n, float64(n)/float64(len(c.body)), err)
		if err != nil {
			t.Fatal(err)
		}
		// Generous bounds: protobuf measures 11x, JSON 23x (and JSON
		// bodies are held to a quarter of the limit).
		if bound := map[Format]uint64{Proto: 16, JSON: 32}[c.f]; n > bound*uint64(len(c.body)) {
			t.Errorf("%s: %d-byte body allocated %d bytes", c.name, len(c.body), n)
		}
	}
}
