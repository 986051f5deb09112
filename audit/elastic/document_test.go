package elastic

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/hlc"
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
		b, err := new(encoder).appendSource(nil, &d, r.Written, idSum(d.IDs))
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
	if b, _ := new(encoder).appendSource(nil, &dcsync.Entry{IDs: []string{"z"}}, time.Time{}, 0); strings.Contains(string(b), "written") {
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

// dcsyncID returns the ID dcsync makes for a write of version v (see
// dcsync's newID): a UUIDv7 of the version's millisecond and counter, and
// 62 bits made of seed.
func dcsyncID(v, seed uint64) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[0:8], v&^0xffff|0x7000|v&0x0fff)
	binary.BigEndian.PutUint64(u[8:16], (seed*0x9e3779b97f4a7c15)>>2|1<<63)
	return u.String()
}

// TestPackedWritesRoundTrip packs writes of every kind of ID and reads
// them back: each ID and written time exact, only the IDs a trace cannot
// find by time as keywords, and an ID dcsync makes in 11 bytes.
func TestPackedWritesRoundTrip(t *testing.T) {
	ms := time.Date(2026, 11, 25, 9, 0, 0, 50_000_000, time.UTC).UnixMilli()
	v := uint64(ms) << 16
	d := dcsync.Entry{DC: "a", Origin: "a", Stage: dcsync.StageApply, Status: dcsync.StatusOK, Attempt: 1}
	add := func(id string, w time.Time) {
		d.IDs, d.Written = append(d.IDs, id), append(d.Written, w)
	}
	add(dcsyncID(v+5, 1), time.UnixMilli(ms))                               // packTimeID
	add(dcsyncID(v+(900<<16), 2), time.UnixMilli(ms+900))                   // packTimeID, later ms
	add(dcsyncID(v+(3<<16), 3), time.UnixMilli(ms+3).Add(999_999))          // packTimeIDAt
	add(dcsyncID(v-(3600_000<<16), 4), time.UnixMilli(ms+1))                // packUUID: the user's clock
	add("0190a3b4-7c2e-4000-8000-000000000001", time.UnixMilli(ms).Add(-1)) // packUUID, v4, earlier
	add("0190A3B4-7C2E-7000-8000-000000000001", time.UnixMilli(ms+2))       // packString
	add("req-1 \"ü\"", time.UnixMilli(ms+2).Add(5))                         // packString
	add(dcsyncID(v+(1<<16), 5), time.UnixMilli(ms+1))                       // packTimeID after the others
	e := &encoder{prefix: "p"}
	b, n, err := e.appendPair(nil, &d)
	if err != nil || n != 1 {
		t.Fatalf("%d documents, %v", n, err)
	}
	var src source
	if err := json.Unmarshal([]byte(strings.Split(string(b), "\n")[1]), &src); err != nil {
		t.Fatal(err)
	}
	keywords := slices.Clone(src.IDs)
	if err := src.unpack(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.IDs, d.IDs) {
		t.Fatalf("IDs %q, want %q", src.IDs, d.IDs)
	}
	for i, w := range d.Written {
		if got := src.written(i); !got.Equal(w) {
			t.Errorf("write %d written %v, want %v", i, got, w)
		}
	}
	wantKeywords := []string{packID(d.IDs[3]), packID(d.IDs[4]), d.IDs[5], d.IDs[6]}
	if !slices.Equal(keywords, wantKeywords) {
		t.Errorf("keywords %q, want %q", keywords, wantKeywords)
	}
	if !src.Written.Equal(time.UnixMilli(ms).Add(-1)) || !src.Last.Equal(time.UnixMilli(ms+900)) {
		t.Errorf("written %v, last %v", src.Written, src.Last)
	}
	one := dcsync.Entry{IDs: d.IDs[7:], Written: d.Written[7:]}
	if e.appendPacked(nil, nil, &one, time.UnixMilli(ms)); len(e.packed) != 11 {
		t.Errorf("an ID dcsync makes packs in %d bytes, want 11", len(e.packed))
	}
	for _, bad := range [][]byte{{0x80}, {packTimeID, 1, 2}, {packString, 0, 9, 'a'}, {packString, 0x80}, {packUUID, 0, 1}, {packTimeIDAt, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff, 0xff, 0x7f}} {
		s := source{X: stored{N: 1, P: bad}}
		if err := s.unpack(); err == nil {
			t.Errorf("%v unpacked as %q", bad, s.IDs)
		}
	}
	if s := (source{X: stored{N: 2, P: []byte{packString, 0, 1, 'a'}}}); s.unpack() == nil {
		t.Error("a count that differs from the writes packed was accepted")
	}
	// An entry whose writes have no written time but one, far ahead: its
	// delta from the zero time (the document's first) still packs.
	far := time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC)
	mixed := dcsync.Entry{IDs: []string{"a", "b"}, Written: []time.Time{{}, far}}
	e.appendPacked(nil, nil, &mixed, time.Time{})
	s := source{Last: &far, X: stored{N: 2, P: e.packed}}
	if err := s.unpack(); err != nil || !s.written(0).IsZero() || !s.written(1).Equal(far) {
		t.Errorf("mixed times read back as %v %v, %v", s.written(0), s.written(1), err)
	}
}

// BenchmarkEncode encodes the entries of 256 writes between two
// datacenters: process (with requests of 256 B), reship and apply, their
// IDs made by dcsync (ids=dcsync: UUIDv7s of the write's version) or set
// by the user (ids=user: strings, which keep a keyword each).
func BenchmarkEncode(b *testing.B) {
	start := uint64(time.Now().UnixMilli()) << 16
	for _, ids := range []string{"dcsync", "user"} {
		var recs []dcsync.Record
		for i := range 256 {
			v := start + uint64(i)*(1<<16)*3/1000 + uint64(i) // 256 writes in 0.8 ms, as at 300k writes/s
			id := dcsyncID(v, uint64(i))
			if ids == "user" {
				id = fmt.Sprintf("order-%09d", i)
			}
			w := hlc.Time(v)
			recs = append(recs,
				dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess,
					Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w,
					Request: &dcsync.Request{ID: id, Origin: "unicom", Key: "user:42", Op: "set",
						Payload: make([]byte, 256), Version: v}},
				dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship,
					Status: dcsync.StatusOK, Target: "telecom", Attempt: 1, Written: w, Time: w},
				dcsync.Record{ID: id, DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply,
					Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w})
		}
		for _, body := range []bool{true, false} {
			b.Run(fmt.Sprintf("ids=%s/body=%v", ids, body), func(b *testing.B) {
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
