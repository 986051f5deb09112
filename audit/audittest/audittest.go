// Package audittest tests a dcsync.AuditLog against what the Reconciler
// relies on: Trails pages through the writes of one origin accepted in a
// window, in (written, ID) order, each trail whole and once, the origin's
// process record carrying its request, whether its records came one per
// entry or packed many writes to an entry; Digests and IDs select exactly
// the writes of a kind of entry in a window, to the nanosecond. The stores
// of this module run it, and so can a store of your own:
//
//	func TestConformance(t *testing.T) {
//		audittest.Run(t, audittest.Store{Open: func(t *testing.T) dcsync.AuditLog { return newMyLog(t) }})
//	}
package audittest

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// Store opens the logs under test.
type Store struct {
	// Open returns an empty log, closed when the test ends.
	Open func(t *testing.T) dcsync.AuditLog
	// Flush makes every record appended to l so far readable by Trails;
	// nil when Append does.
	Flush func(t *testing.T, l dcsync.AuditLog)
	// Records, when set, returns every record of the write id in l, as a
	// trace (`dcsync trace`) reads them: the tests then check that a
	// write is traceable whatever its ID looks like.
	Records func(t *testing.T, l dcsync.AuditLog, id string) []dcsync.Record
}

// Run runs every test of the package against s, each on a log of its own.
func Run(t *testing.T, s Store) {
	for _, c := range []struct {
		name string
		test func(t *testing.T, s Store)
	}{
		{"PagesThroughAWindow", pagesThroughAWindow},
		{"KeepsLongTrailsWhole", keepsLongTrailsWhole},
		{"RecordsRoundTrip", recordsRoundTrip},
		{"UnpacksBatchEntries", unpacksBatchEntries},
		{"DigestsAndIDsSelectAKindInAWindow", digestsAndIDs},
		{"KeepsEveryKindOfID", keepsEveryKindOfID},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, s) })
	}
}

// t0 puts windows across midnight, UTC: a store that splits its records
// by day must read both days.
var t0 = time.Date(2026, 11, 25, 23, 59, 50, 0, time.UTC)

// rec returns an ok record of the first attempt of stage.
func rec(id, dc, origin string, stage dcsync.Stage, written time.Time) dcsync.Record {
	return dcsync.Record{ID: id, DC: dc, Origin: origin, Stage: stage, Status: dcsync.StatusOK,
		Attempt: 1, Written: written, Time: written.Add(time.Millisecond)}
}

// write appends recs, packed as a Syncer packs them, to a new log of s, makes them readable, and returns
// the log.
func (s Store) write(t *testing.T, recs ...[]dcsync.Record) dcsync.AuditLog {
	t.Helper()
	l := s.Open(t)
	for _, batch := range recs {
		if err := l.Append(context.Background(), dcsync.PackRecords(batch)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Flush != nil {
		s.Flush(t, l)
	}
	return l
}

// pages reads every page of q from l and calls each with each trail.
func pages(t *testing.T, l dcsync.AuditLog, q dcsync.TrailQuery, each func(dcsync.Trail)) {
	t.Helper()
	for n := 0; ; n++ {
		page, err := l.Trails(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page.Trails {
			each(tr)
		}
		if page.Next == "" {
			return
		}
		if n > 100 {
			t.Fatal("paging does not end")
		}
		q.After = page.Next
	}
}

// pagesThroughAWindow: trails of one origin, in order, within the window,
// each once, with the peers' records; a malformed cursor is refused.
func pagesThroughAWindow(t *testing.T, s Store) {
	var recs []dcsync.Record
	for i := range 50 {
		w := t0.Add(time.Duration(i%25) * time.Second) // two writes per second, out of order
		recs = append(recs, rec(fmt.Sprintf("w%02d", i), "a", "a", dcsync.StageProcess, w))
		recs = append(recs, rec(fmt.Sprintf("x%02d", i), "b", "b", dcsync.StageProcess, w)) // other origin
	}
	l := s.write(t, recs, []dcsync.Record{rec("w07", "b", "a", dcsync.StageApply, t0.Add(7*time.Second))})

	q := dcsync.TrailQuery{Origin: "a", From: t0.Add(5 * time.Second), To: t0.Add(20 * time.Second), Limit: 7}
	seen := map[string]bool{}
	var prev time.Time
	pages(t, l, q, func(tr dcsync.Trail) {
		w := tr.Records[0].Written
		if w.Before(prev) || w.Before(q.From) || !w.Before(q.To) {
			t.Fatalf("trail %s written %v out of order or window", tr.ID, w)
		}
		if seen[tr.ID] {
			t.Fatalf("%s returned twice", tr.ID)
		}
		prev, seen[tr.ID] = w, true
		if tr.ID == "w07" && (len(tr.Records) != 2 || !tr.Applied("b")) {
			t.Fatalf("trail w07 lacks the peer's record: %+v", tr.Records)
		}
	})
	if len(seen) != 30 { // seconds 5..19, two writes each
		t.Fatalf("got %d trails, want 30: %v", len(seen), seen)
	}
	if _, err := l.Trails(context.Background(), dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Hour),
		After: "garbage"}); err == nil {
		t.Fatal("a malformed cursor was accepted")
	}
}

// keepsLongTrailsWhole pages with a limit that a long trail exceeds:
// every trail still comes whole, once.
func keepsLongTrailsWhole(t *testing.T, s Store) {
	want := map[string]int{"a": 3, "b": 40, "c": 3, "d": 1}
	var recs []dcsync.Record
	for i, id := range []string{"a", "b", "c", "d"} {
		w := t0.Add(time.Duration(i) * time.Second)
		for n := range want[id] {
			r := rec(id, "a", "a", dcsync.StageReship, w)
			r.Attempt = n + 1
			recs = append(recs, r)
		}
	}
	l := s.write(t, recs)
	got := map[string]int{}
	pages(t, l, dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Minute), Limit: 1}, func(tr dcsync.Trail) {
		if _, dup := got[tr.ID]; dup {
			t.Fatalf("%s returned twice", tr.ID)
		}
		got[tr.ID] = len(tr.Records)
	})
	if !maps.Equal(got, want) {
		t.Fatalf("records per trail %v, want %v", got, want)
	}
}

// recordsRoundTrip: every field of a record, and the request of a process
// record, come back as appended.
func recordsRoundTrip(t *testing.T, s Store) {
	req := &dcsync.Request{ID: "r1", Origin: "unicom", Key: "user:1", Op: "set",
		Payload: []byte("\x00binary\xff"), Version: 1<<63 + 12345, Header: map[string]string{"tenant": "t1"}}
	w := t0.Add(123456789 * time.Nanosecond)
	process := rec("r1", "unicom", "unicom", dcsync.StageProcess, w)
	process.Request = req
	failed := dcsync.Record{ID: "r1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship,
		Status: dcsync.StatusFailed, Target: "telecom", Attempt: 2, Error: `timeout "quoted" ü`,
		Written: w, Time: w.Add(2 * time.Second)}
	l := s.write(t, []dcsync.Record{process, failed})

	var trails []dcsync.Trail
	pages(t, l, dcsync.TrailQuery{Origin: "unicom", From: t0, To: t0.Add(time.Second)}, func(tr dcsync.Trail) {
		trails = append(trails, tr)
	})
	if len(trails) != 1 || len(trails[0].Records) != 2 {
		t.Fatalf("trails %+v, want one of two records", trails)
	}
	for i, want := range []dcsync.Record{process, failed} {
		if got := trails[0].Records[i]; !SameRecord(got, want) {
			t.Fatalf("record %d came back as %+v, want %+v", i, got, want)
		}
	}
	got := trails[0].Source()
	if got == nil || got.ID != req.ID || got.Origin != req.Origin || got.Key != req.Key || got.Op != req.Op ||
		string(got.Payload) != string(req.Payload) || got.Version != req.Version || !maps.Equal(got.Header, req.Header) {
		t.Fatalf("request came back as %+v, want %+v", got, req)
	}
}

// SameRecord reports whether two records are the same but for their
// requests, comparing times as instants: a store may give them back in
// another location.
func SameRecord(a, b dcsync.Record) bool {
	a.Request, b.Request = nil, nil
	if !a.Time.Equal(b.Time) || !a.Written.Equal(b.Written) {
		return false
	}
	a.Time, b.Time, a.Written, b.Written = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

// unpacksBatchEntries: an entry carrying many writes, with their requests,
// comes back as a record per write, each in the trail of its write, with
// its own written time and request.
func unpacksBatchEntries(t *testing.T, s Store) {
	const n = 300
	process := dcsync.Entry{DC: "a", Origin: "a", Stage: dcsync.StageProcess, Status: dcsync.StatusOK,
		Attempt: 1, Time: t0.Add(time.Second)}
	apply := dcsync.Entry{DC: "b", Origin: "a", Stage: dcsync.StageApply, Status: dcsync.StatusOK,
		Attempt: 1, Time: t0.Add(2 * time.Second)}
	for i := range n {
		id := fmt.Sprintf("p%03d", i)
		w := t0.Add(time.Duration(i) * time.Millisecond) // across midnight
		process.IDs, process.Written = append(process.IDs, id), append(process.Written, w)
		process.Requests = append(process.Requests, &dcsync.Request{ID: id, Origin: "a", Key: "k" + id,
			Payload: []byte(id), Version: uint64(i + 1)})
		if i%3 != 0 {
			apply.IDs, apply.Written = append(apply.IDs, id), append(apply.Written, w)
		}
	}
	failed := dcsync.Entry{DC: "b", Origin: "a", Stage: dcsync.StageApply, Status: dcsync.StatusFailed,
		Attempt: 1, Error: "boom", Time: t0.Add(3 * time.Second), IDs: []string{"p000"}, Written: []time.Time{t0}}
	l := s.Open(t)
	if err := l.Append(context.Background(), []dcsync.Entry{process, apply, failed}); err != nil {
		t.Fatal(err)
	}
	if s.Flush != nil {
		s.Flush(t, l)
	}
	got := 0
	pages(t, l, dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Minute), Limit: 70}, func(tr dcsync.Trail) {
		i := got
		got++
		if want := fmt.Sprintf("p%03d", i); tr.ID != want {
			t.Fatalf("trail %d is %s, want %s", i, tr.ID, want)
		}
		src := tr.Source()
		if src == nil || src.ID != tr.ID || string(src.Payload) != tr.ID || src.Version != uint64(i+1) {
			t.Fatalf("trail %s has source %+v", tr.ID, src)
		}
		if w := t0.Add(time.Duration(i) * time.Millisecond); !tr.Records[0].Written.Equal(w) {
			t.Fatalf("trail %s written %v, want %v", tr.ID, tr.Records[0].Written, w)
		}
		if tr.Applied("b") != (i%3 != 0) {
			t.Fatalf("trail %s applied in b: %v: %+v", tr.ID, tr.Applied("b"), tr.Records)
		}
		if i == 0 && (len(tr.Records) != 2 || tr.Records[1].Error != "boom") {
			t.Fatalf("trail p000: %+v", tr.Records)
		}
	})
	if got != n {
		t.Fatalf("%d trails, want %d", got, n)
	}
}

// digestsAndIDs: Digests and IDs see only the entries of the kind asked
// for, only the writes of the window, cut to the nanosecond, by second.
func digestsAndIDs(t *testing.T, s Store) {
	var recs []dcsync.Record
	var want []string
	var wantWritten []time.Time
	from, to := t0.Add(1500*time.Millisecond), t0.Add(4200*time.Millisecond)
	for i := range 600 {
		id := fmt.Sprintf("d%03d", i)
		w := t0.Add(time.Duration(i) * 10 * time.Millisecond) // seconds 0..5
		recs = append(recs, rec(id, "a", "a", dcsync.StageProcess, w))
		if i%7 == 0 {
			continue // not applied in b
		}
		recs = append(recs, rec(id, "b", "a", dcsync.StageApply, w), rec(id, "c", "a", dcsync.StageApply, w))
		if !w.Before(from) && w.Before(to) {
			want, wantWritten = append(want, id), append(wantWritten, w)
		}
	}
	recs = append(recs, rec("other", "b", "b", dcsync.StageApply, t0.Add(2*time.Second)))
	bad := rec("bad", "b", "a", dcsync.StageApply, t0.Add(2*time.Second))
	bad.Status, bad.Error = dcsync.StatusFailed, "boom"
	l := s.write(t, recs, []dcsync.Record{bad})

	q := dcsync.SetQuery{DC: "b", Origin: "a", Stage: dcsync.StageApply, From: from, To: to}
	checkSet(t, l, q, want, wantWritten)
	q.Status = dcsync.StatusFailed
	q.From, q.To = t0, t0.Add(time.Minute)
	if ids, err := l.IDs(context.Background(), q); err != nil || !slices.Equal(ids, []string{"bad"}) {
		t.Fatalf("failed IDs %v, %v", ids, err)
	}
	if d, err := l.Digests(context.Background(), q); err != nil || len(d) != 1 || d[0].Count != 1 {
		t.Fatalf("failed digests %+v, %v", d, err)
	}
}

// uuidV7 returns a canonical UUIDv7 of millisecond ms whose other bits
// are made of n, as dcsync's own IDs are made of a write's version.
func uuidV7(ms int64, n uint64) string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[0:8], uint64(ms)<<16|0x7000|n&0x0fff)
	binary.BigEndian.PutUint64(u[8:16], (n*0x9e3779b97f4a7c15)>>2|1<<63)
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// keepsEveryKindOfID: whatever a write's ID looks like — a UUIDv7 of its
// own millisecond, as dcsync makes them, or accepted later within it; a
// UUIDv7 of another time, a UUIDv4 or an upper-case UUID, as a user may
// set; any other string — its trail, written time, digests and IDs come
// back exact, and, with Records, its trace finds its every record. A
// store may keep dcsync's IDs more compactly than the others (as
// audit/elastic does), but must find them all.
func keepsEveryKindOfID(t *testing.T, s Store) {
	ms := t0.Add(9 * time.Second).UnixMilli() // one second before midnight
	type write struct {
		id string
		w  time.Time
	}
	var writes []write
	for i := range 40 {
		m := ms + int64(i%20)*100 // seconds 9 and 10 (across midnight), out of order
		at := time.UnixMilli(m)
		switch i % 8 {
		case 0, 1, 2:
			writes = append(writes, write{uuidV7(m, uint64(i)), at})
		case 3:
			writes = append(writes, write{uuidV7(m, uint64(i)), at.Add(123456 * time.Nanosecond)})
		case 4:
			writes = append(writes, write{uuidV7(m-3600_000, uint64(i)), at}) // the user's clock
		case 5:
			writes = append(writes, write{fmt.Sprintf("%08x-1234-4abc-8def-%012x", i, i), at.Add(7 * time.Nanosecond)})
		case 6:
			writes = append(writes, write{fmt.Sprintf("%08X-1234-7ABC-8DEF-%012X", i, i), at})
		default:
			writes = append(writes, write{fmt.Sprintf("order-%d/ü \"~%d\"", i, i), at.Add(time.Duration(i))})
		}
	}
	var recs, applied []dcsync.Record
	var want []string
	var wantWritten []time.Time
	for i, w := range writes {
		p := rec(w.id, "a", "a", dcsync.StageProcess, w.w)
		p.Request = &dcsync.Request{ID: w.id, Origin: "a", Key: "k", Op: "set", Payload: []byte(w.id), Version: uint64(i + 1)}
		recs = append(recs, p)
		if i%5 != 0 {
			applied = append(applied, rec(w.id, "b", "a", dcsync.StageApply, w.w))
			want, wantWritten = append(want, w.id), append(wantWritten, w.w)
		}
	}
	failed := rec(writes[1].id, "b", "a", dcsync.StageApply, writes[1].w)
	failed.Status, failed.Error, failed.Attempt = dcsync.StatusFailed, "boom", 2
	l := s.write(t, recs, applied, []dcsync.Record{failed})

	got := map[string]dcsync.Trail{}
	pages(t, l, dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Minute), Limit: 7}, func(tr dcsync.Trail) {
		got[tr.ID] = tr
	})
	for i, w := range writes {
		tr, ok := got[w.id]
		nrec := 1
		if i%5 != 0 {
			nrec++
		}
		if i == 1 {
			nrec++
		}
		if !ok || len(tr.Records) != nrec {
			t.Fatalf("trail of %q: %+v, want %d records", w.id, tr, nrec)
		}
		for _, r := range tr.Records {
			if !r.Written.Equal(w.w) {
				t.Fatalf("%q written %v, want %v", w.id, r.Written, w.w)
			}
		}
		if src := tr.Source(); src == nil || src.ID != w.id || string(src.Payload) != w.id {
			t.Fatalf("trail of %q has source %+v", w.id, src)
		}
		if tr.Applied("b") != (i%5 != 0) {
			t.Fatalf("trail of %q applied in b: %v", w.id, tr.Applied("b"))
		}
		if s.Records == nil {
			continue
		}
		traced := s.Records(t, l, w.id)
		if len(traced) != len(tr.Records) {
			t.Fatalf("trace of %q: %d records, want %d: %+v", w.id, len(traced), len(tr.Records), traced)
		}
		for k := range traced {
			if !slices.ContainsFunc(tr.Records, func(r dcsync.Record) bool { return SameRecord(r, traced[k]) }) {
				t.Fatalf("trace of %q: record %+v not in its trail %+v", w.id, traced[k], tr.Records)
			}
		}
	}
	if len(got) != len(writes) {
		t.Fatalf("%d trails, want %d", len(got), len(writes))
	}
	if s.Records != nil {
		if recs := s.Records(t, l, uuidV7(ms, 4095)); len(recs) != 0 {
			t.Fatalf("trace of an ID never written: %+v", recs)
		}
	}
	// A window that cuts a second, to the nanosecond.
	from, to := time.UnixMilli(ms+100).Add(time.Nanosecond), time.UnixMilli(ms+900)
	checkSet(t, l, dcsync.SetQuery{DC: "b", Origin: "a", Stage: dcsync.StageApply, From: from, To: to}, want, wantWritten)
}

// checkSet checks what Digests and IDs return for q against ids, written
// at written: the writes of q's kind, some of them outside its window.
func checkSet(t *testing.T, l dcsync.AuditLog, q dcsync.SetQuery, ids []string, written []time.Time) {
	t.Helper()
	digests, err := l.Digests(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if want := dcsync.SetDigests(ids, written, q.From, q.To); !slices.Equal(digests, want) {
		t.Fatalf("digests %+v, want %+v", digests, want)
	}
	var want []string
	for i, id := range ids {
		if w := written[i]; !w.Before(q.From) && w.Before(q.To) {
			want = append(want, id)
		}
	}
	got, err := l.IDs(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("IDs %q, want %q", got, want)
	}
}
