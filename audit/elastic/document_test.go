package elastic

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
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
		{ID: hard, Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Written: w, Request: &dcsync.Request{ID: hard}},
	} {
		d := dcsync.PackRecords([]dcsync.Record{r})[0]
		b, err := new(encoder).appendSource(nil, &d, r.Written)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
		var src source
		if err := json.Unmarshal(b, &src); err != nil {
			t.Fatal(err)
		}
		if err := src.unpack(); err != nil {
			t.Fatal(err)
		}
		reqs, err := src.requests()
		if err != nil {
			t.Fatal(err)
		}
		got := src.record(0, reqs)
		if !got.Written.Equal(r.Written) || !got.Time.Equal(r.Time) {
			t.Fatalf("times came back as %v %v, want %v %v", got.Written, got.Time, r.Written, r.Time)
		}
		got.Written, got.Time, r.Written, r.Time = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("got %+v\nwant %+v\nfrom %s", got, r, b)
		}
	}
	if b := appendString(nil, "bad \xff utf-8"); string(b) != `"bad \ufffd utf-8"` {
		t.Fatalf("invalid UTF-8 encoded as %s", b)
	}
	if b, _ := new(encoder).appendSource(nil, &dcsync.Entry{IDs: []string{"z"}}, time.Time{}); strings.Contains(string(b), "written") {
		t.Fatalf("zero time encoded: %s", b)
	}
}

// TestEntriesSplitBySecond checks that an entry whose writes span seconds
// becomes a document per second, each with its writes.
func TestEntriesSplitBySecond(t *testing.T) {
	w := time.Date(2026, 11, 25, 9, 0, 0, 900_000_000, time.UTC)
	d := dcsync.Entry{DC: "a", Origin: "a", Stage: dcsync.StageApply, Status: dcsync.StatusOK, Attempt: 1, Time: w,
		IDs: []string{"x", "y", "z"}, Written: []time.Time{w, w.Add(200 * time.Millisecond), w.Add(50 * time.Millisecond)}}
	b, n, err := (&encoder{prefix: "p"}).appendPair(nil, &d)
	if err != nil || n != 2 {
		t.Fatalf("%d documents, %v; want 2", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var first, second source
	if err := json.Unmarshal([]byte(lines[1]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[3]), &second); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(first.unpack(), second.unpack()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.IDs, []string{"x", "z"}) || !slices.Equal(second.IDs, []string{"y"}) ||
		!first.written(1).Equal(w.Add(50*time.Millisecond)) || first.X.N != 2 ||
		first.X.H != dcsync.IDHash("x")+dcsync.IDHash("z") {
		t.Fatalf("documents %+v and %+v", first, second)
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
		b, _, _ = e.appendPair(b, &dcsync.Entry{IDs: []string{id}, Written: []time.Time{w}, Time: w})
	}
	c := &chunk{lines: string(b), n: 3}
	for i, id := range []string{"r0", "r1", "r2"} {
		index, docID := c.action(i)
		if index != "p-2026.11.25" || !strings.HasPrefix(docID, id+".") {
			t.Errorf("action(%d) = %s %s, want p-2026.11.25 %s.*", i, index, docID, id)
		}
	}
}

// BenchmarkEncode encodes the entries of 256 writes between two
// datacenters: process (with requests of 256 B), reship and apply.
func BenchmarkEncode(b *testing.B) {
	w := time.Now()
	var recs []dcsync.Record
	for i := range 256 {
		id := fmt.Sprintf("0190a3b4-7c2e-7000-8000-%012d", i)
		w := w.Add(time.Duration(i) * 3 * time.Microsecond) // 256 writes in 0.8 ms, as at 300k writes/s
		recs = append(recs,
			dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess,
				Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w,
				Request: &dcsync.Request{ID: id, Origin: "unicom", Key: "user:42", Op: "set",
					Payload: make([]byte, 256), Version: 1 << 40}},
			dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship,
				Status: dcsync.StatusOK, Target: "telecom", Attempt: 1, Written: w, Time: w},
			dcsync.Record{ID: id, DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply,
				Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w})
	}
	for _, body := range []bool{true, false} {
		b.Run(fmt.Sprint("body=", body), func(b *testing.B) {
			entries := dcsync.PackRecords(recs)
			if !body {
				entries[0].Requests = nil
			}
			e := &encoder{prefix: "dcsync-audit"}
			var buf []byte
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				buf = buf[:0]
				for i := range entries {
					buf, _, _ = e.appendPair(buf, &entries[i])
				}
				size = len(buf)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/write")
			b.ReportMetric(float64(size)/256, "B/write")
		})
	}
}

func TestIDsPackOnlyCanonicalUUIDs(t *testing.T) {
	for id, packed := range map[string]bool{
		"0190a3b4-7c2e-7000-8000-000000000001": true,
		"0190A3B4-7C2E-7000-8000-000000000001": false, // would not come back as given
		"req-1":                                false,
		"0190a3b47c2e70008000000000000001":     false,
	} {
		k := packID(id)
		if (len(k) == 23 && k[0] == '~') != packed || unpackID(k) != id {
			t.Errorf("%s stored as %s, read back as %s", id, k, unpackID(k))
		}
	}
}
