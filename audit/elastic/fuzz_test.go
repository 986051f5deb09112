package elastic

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// FuzzSource reads arbitrary documents as the log reads its search hits
// (what a writer to the audit indices may have left there): never a
// panic, and a record the encoder wrote reads back the same. The seed
// corpus runs with every go test.
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
		f.Add(e.appendSource(nil, &r))
	}
	f.Add([]byte(`{"written":"not a time","request":{"payload":"!!"},"attempt":1e99}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var s source
		if json.Unmarshal(doc, &s) != nil {
			return
		}
		r := s.record()
		again := e.appendSource(nil, &r)
		var s2 source
		if err := json.Unmarshal(again, &s2); err != nil {
			t.Fatalf("re-encoding %q: %v", again, err)
		}
	})
}

// FuzzCursor parses arbitrary page cursors, which callers hand back: never
// a panic, and a cursor parsed names the same page when formatted again.
func FuzzCursor(f *testing.F) {
	f.Add(cursor(time.Unix(0, 1_800_000_000_000_000_000), "id/with/slashes"))
	f.Add("/")
	f.Add("-9223372036854775808/x")
	f.Fuzz(func(t *testing.T, c string) {
		at, id, err := parseCursor(c)
		if err != nil {
			return
		}
		at2, id2, err := parseCursor(cursor(at, id))
		if err != nil || !at2.Equal(at) || id2 != id {
			t.Fatalf("%q: %v %q, then %v %q %v", c, at, id, at2, id2, err)
		}
	})
}
