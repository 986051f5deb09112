package elastic

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// FuzzSource reads arbitrary documents as the log reads its search hits
// (what a writer to the audit indices may have left there): never a
// panic, and the records read from a document encode again into one that
// reads back. The seed corpus runs with every go test.
func FuzzSource(f *testing.F) {
	w := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	e := &encoder{prefix: "p"}
	for _, r := range []dcsync.Record{
		{ID: "r1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1,
			Written: w, Time: w, Request: &dcsync.Request{ID: "r1", Origin: "unicom", Key: "k\n\"", Op: "set",
				Payload: []byte{0, 1}, Version: 1 << 40, Header: map[string]string{"a": "b"}}},
		{ID: "r2\u2028", DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply, Status: dcsync.StatusFailed,
			Error: "bad\x00", Attempt: 3, Written: w, Time: w},
	} {
		d := dcsync.PackRecords([]dcsync.Record{r})[0]
		doc, err := e.appendSource(nil, &d, w, idSum(d.IDs))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	f.Add([]byte(`{"written":"not a time","ids":["a","b"],"x":{"n":1e99,"w":[1],"b":"!!"},"attempt":1e99}`))
	f.Add([]byte(`{"ids":["a","b"],"x":{"w":[5,6,7],"b":"AAAA"}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var s source
		if json.Unmarshal(doc, &s) != nil || s.unpack() != nil {
			return
		}
		reqs, _ := s.requests() // a body that does not decode is an error, not a panic
		var recs []dcsync.Record
		for i := range s.IDs {
			recs = append(recs, s.record(i, reqs))
		}
		for _, d := range dcsync.PackRecords(recs) {
			again, _, err := e.appendPair(nil, &d)
			if err != nil {
				continue // requests internal/wire refuses to encode
			}
			for _, line := range splitLines(again) {
				if !json.Valid(line) {
					t.Fatalf("re-encoding %q: invalid %q", doc, line)
				}
			}
		}
	})
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

// FuzzCursor parses arbitrary page cursors, which callers hand back: never
// a panic, and a cursor parsed names the same page when formatted again.
func FuzzCursor(f *testing.F) {
	f.Add(cursor(time.Unix(0, 1_800_000_000_000_000_000)))
	f.Add("s")
	f.Add("s-9223372036854775808")
	f.Fuzz(func(t *testing.T, c string) {
		at, err := parseCursor(c)
		if err != nil {
			return
		}
		at2, err := parseCursor(cursor(at))
		if err != nil || !at2.Equal(at) {
			t.Fatalf("%q: %v, then %v %v", c, at, at2, err)
		}
	})
}
