package elastic

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// TestAppendSourceRoundTrips checks the hand-written encoder against
// encoding/json's decoder, on the strings JSON makes hard.
func TestAppendSourceRoundTrips(t *testing.T) {
	w := time.Date(2026, 11, 25, 9, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	hard := "quote \" backslash \\ newline \n tab \t cr \r nul \x00 bell \x07 del \x7f ü 世 😀 \u2028 <&>"
	for _, r := range []dcsync.Record{
		{ID: "a", DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1,
			Written: w, Time: w.Add(time.Nanosecond),
			Request: &dcsync.Request{ID: "a", Origin: "unicom", Key: hard, Op: "set", Payload: []byte{0, 1, 0xff},
				Version: 1<<64 - 1, Header: map[string]string{"b": hard, "a": ""}}},
		{ID: "b", DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply, Status: dcsync.StatusFailed,
			Target: "x", Attempt: 7, Error: hard},
		{ID: "c", Request: &dcsync.Request{}},
	} {
		b := new(encoder).appendSource(nil, &r)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
		var src source
		if err := json.Unmarshal(b, &src); err != nil {
			t.Fatal(err)
		}
		got := src.record()
		if !got.Written.Equal(r.Written) || !got.Time.Equal(r.Time) {
			t.Fatalf("times came back as %v %v, want %v %v", got.Written, got.Time, r.Written, r.Time)
		}
		got.Written, got.Time, r.Written, r.Time = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if r.Request != nil && r.Request.Payload == nil {
			got.Request.Payload = nil
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("got %+v\nwant %+v\nfrom %s", got, r, b)
		}
	}
	if b := appendString(nil, "bad \xff utf-8"); string(b) != `"bad \ufffd utf-8"` {
		t.Fatalf("invalid UTF-8 encoded as %s", b)
	}
	if b := new(encoder).appendSource(nil, &dcsync.Record{ID: "z"}); strings.Contains(string(b), "written") {
		t.Fatalf("zero time encoded: %s", b)
	}
}

// TestClockFormatsAsTimePackage checks the encoder's cached time formatting
// against the time package's, across seconds, days and zones.
func TestClockFormatsAsTimePackage(t *testing.T) {
	var c clock
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	for i, ns := range []int{0, 1, 10, 120000000, 123456789, 999999999, 500000000, 0} {
		tt := base.Add(time.Duration(i/2)*time.Second + time.Duration(ns)).In(time.FixedZone("X", -7*3600))
		want := `,"t":"` + tt.UTC().Format(time.RFC3339Nano) + `"`
		if got := string(c.appendField(nil, `,"t":`, tt)); got != want {
			t.Errorf("appendField(%v) = %s, want %s", tt, got, want)
		}
		if got, want := string(c.appendDay(nil, tt)), tt.UTC().Format(dayLayout); got != want {
			t.Errorf("appendDay(%v) = %s, want %s", tt, got, want)
		}
	}
	if got := c.appendField(nil, `,"t":`, time.Time{}); len(got) != 0 {
		t.Errorf("zero time encoded: %s", got)
	}
}

func TestPairEndsDropsATornRecord(t *testing.T) {
	for in, want := range map[string][]int{
		"a1\ns1\na2\ns2\n": {6, 12},
		"a1\ns1\na2\ns":    {6},
		"a1\ns1\na2\n":     {6},
		"a1\ns1\na":        {6},
		"":                 nil,
	} {
		if got := pairEnds([]byte(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("pairEnds(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestChunkNamesTheActionOfEachRecord(t *testing.T) {
	e := &encoder{prefix: "p"}
	w := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var b []byte
	for _, id := range []string{"r0", "r1", "r2"} {
		b = e.appendPair(b, &dcsync.Record{ID: id, Written: w, Time: w})
	}
	c := &chunk{lines: string(b), n: 3}
	for i, id := range []string{"r0", "r1", "r2"} {
		index, docID := c.action(i)
		if index != "p-2026.11.25" || !strings.HasPrefix(docID, id+".") {
			t.Errorf("action(%d) = %s %s, want p-2026.11.25 %s.*", i, index, docID, id)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	w := time.Now()
	recs := []dcsync.Record{
		{ID: "0190a3b4-7c2e-7000-8000-000000000001", DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess,
			Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w,
			Request: &dcsync.Request{ID: "0190a3b4-7c2e-7000-8000-000000000001", Origin: "unicom", Key: "user:42",
				Op: "set", Payload: make([]byte, 64), Version: 1 << 40}},
		{ID: "0190a3b4-7c2e-7000-8000-000000000001", DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship,
			Status: dcsync.StatusOK, Target: "telecom", Attempt: 1, Written: w, Time: w},
		{ID: "0190a3b4-7c2e-7000-8000-000000000001", DC: "telecom", Origin: "unicom", Stage: dcsync.StageCollect,
			Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w},
		{ID: "0190a3b4-7c2e-7000-8000-000000000001", DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply,
			Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w},
	}
	e := &encoder{prefix: "dcsync-audit"}
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = e.appendPair(buf[:0], &recs[i%len(recs)])
	}
}
