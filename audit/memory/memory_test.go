package memory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/audittest"
	memaudit "github.com/dcsync/dcsync/audit/memory"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func rec(id, dc, origin string, stage dcsync.Stage, written time.Time) dcsync.Record {
	return dcsync.Record{ID: id, DC: dc, Origin: origin, Stage: stage, Status: dcsync.StatusOK, Written: written, Time: written}
}

func TestConformance(t *testing.T) {
	audittest.Run(t, audittest.Store{Open: func(*testing.T) dcsync.AuditLog { return memaudit.New(0) },
		Records: func(_ *testing.T, l dcsync.AuditLog, id string) []dcsync.Record { return l.(*memaudit.Log).Records(id) }})
}

func TestLogDropsOldestWritesPastItsBound(t *testing.T) {
	ctx := context.Background()
	l := memaudit.New(10)
	for i := range 25 {
		l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint("w", i), "a", "a", dcsync.StageProcess, t0.Add(time.Duration(i)*time.Second))}))
	}
	if l.Len() != 10 || l.Records("w14") != nil || l.Records("w15") == nil {
		t.Fatalf("kept %d writes; w14 %v, w15 %v", l.Len(), l.Records("w14"), l.Records("w15"))
	}
	if n := l.Counts()[memaudit.Tally{DC: "a", Stage: dcsync.StageProcess, Status: dcsync.StatusOK}]; n != 25 {
		t.Fatalf("counts forgot evicted records: %d", n)
	}
}

func TestCountsHoldOnlyWhatWasAppended(t *testing.T) {
	l := memaudit.New(0)
	l.Append(context.Background(), dcsync.PackRecords([]dcsync.Record{rec("w", "a", "a", dcsync.StageProcess, t0), rec("w", "b", "a", dcsync.StageApply, t0)}))
	counts := l.Counts()
	if len(counts) != 2 {
		t.Fatalf("counts: %v", counts)
	}
}

func TestTrailsGatherRecordsAcrossChunks(t *testing.T) {
	ctx := context.Background()
	l := memaudit.New(64) // chunks of 8 records
	for i := range 20 {
		l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint("w", i), "a", "a", dcsync.StageProcess, t0.Add(time.Duration(i)*time.Second))}))
	}
	for i := range 20 { // the peer's records, later, in other chunks
		l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint("w", i), "b", "a", dcsync.StageApply, t0.Add(time.Duration(i)*time.Second))}))
	}
	q := dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Hour), Limit: 6}
	n := 0
	for {
		page, err := l.Trails(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page.Trails {
			if len(tr.Records) != 2 || tr.Records[0].Stage != dcsync.StageProcess || !tr.Applied("b") {
				t.Fatalf("trail %s: %+v", tr.ID, tr.Records)
			}
			n++
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if n != 20 {
		t.Fatalf("%d trails, want 20", n)
	}
}

func TestPagingSurvivesDroppedChunksAndOtherReaders(t *testing.T) {
	ctx := context.Background()
	l := memaudit.New(16) // chunks of 2 records
	for i := range 16 {
		origin := []string{"a", "b"}[i%2]
		l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint(origin, i), origin, origin, dcsync.StageProcess, t0.Add(time.Duration(i)*time.Second))}))
	}
	qa := dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Hour), Limit: 3}
	qb := qa
	qb.Origin = "b"
	pa, _ := l.Trails(ctx, qa)
	pb, _ := l.Trails(ctx, qb)
	// New records drop the chunks the pages are reading from.
	for i := range 16 {
		l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint("c", i), "c", "c", dcsync.StageProcess, t0)}))
	}
	got := map[string]int{}
	for _, p := range []*dcsync.TrailPage{&pa, &pb} {
		q := &qa
		if p == &pb {
			q = &qb
		}
		for {
			for _, tr := range p.Trails {
				got[q.Origin]++
				if tr.Records[0].Origin != q.Origin {
					t.Fatalf("trail %s in the pages of %s", tr.ID, q.Origin)
				}
			}
			if p.Next == "" {
				break
			}
			q.After = p.Next
			var err error
			if *p, err = l.Trails(ctx, *q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got["a"] != 8 || got["b"] != 8 {
		t.Fatalf("trails per origin: %v, want 8 each", got)
	}
	if l.Len() != 16 {
		t.Fatalf("holds %d records, want 16", l.Len())
	}
}

// BenchmarkAppend measures Append of the four records of a write between
// two datacenters, in batches as the Syncer's audit queue hands them over.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l := memaudit.New(0)
	const batch = 256
	recs := make([]dcsync.Record, 0, 4*batch)
	req := &dcsync.Request{Key: "k", Op: "set"}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		recs = recs[:0]
		w := t0.Add(time.Duration(n) * time.Microsecond)
		for i := range batch {
			id := strconv.Itoa(n + i)
			p := rec(id, "a", "a", dcsync.StageProcess, w)
			p.Request = req
			r := rec(id, "a", "a", dcsync.StageReship, w)
			r.Target = "b"
			recs = append(recs, p, r, rec(id, "b", "a", dcsync.StageCollect, w), rec(id, "b", "a", dcsync.StageApply, w))
		}
		n += batch
		l.Append(ctx, dcsync.PackRecords(recs))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*4), "ns/record")
}

func TestRequestsRoundTrip(t *testing.T) {
	ctx := context.Background()
	l := memaudit.New(0)
	for _, req := range []*dcsync.Request{
		{ID: "w1", Origin: "a", Key: "user:1", Op: "set", Payload: []byte("v"), Version: 42,
			Header: map[string]string{"traceparent": "00-abc", "tenant": "t1"}},
		{ID: "w2", Origin: "a", Key: "user:2", Version: 1 << 60},
	} {
		r := rec(req.ID, "a", "a", dcsync.StageProcess, t0)
		r.Request = req
		l.Append(ctx, dcsync.PackRecords([]dcsync.Record{r}))
		got := l.Records(req.ID)
		if len(got) != 1 || !reflect.DeepEqual(got[0].Request, req) {
			t.Fatalf("request %s came back as %+v", req.ID, got[0].Request)
		}
		// The log holds the request itself; what it hands out is a copy.
		got[0].Request.Payload = append(got[0].Request.Payload[:0], 'x')
		got[0].Request.Key = "changed"
		if again := l.Records(req.ID); !reflect.DeepEqual(again[0].Request, req) {
			t.Fatalf("request %s changed in the log with the copy handed out: %+v", req.ID, again[0].Request)
		}
	}
}

// A full log drops only chunks whose writes every peer has applied or
// acknowledged; full of others, it refuses new writes, and takes the
// records that complete the writes it holds.
func TestFullLogDropsOnlyCompleteWrites(t *testing.T) {
	ctx := context.Background()
	l := memaudit.NewConfig(memaudit.Config{MaxRecords: 16}) // chunks of 2 records
	l.DeclarePeers("a", []string{"b"})
	process := func(i int) []dcsync.Entry {
		return dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint("w", i), "a", "a", dcsync.StageProcess, t0.Add(time.Duration(i)*time.Second))})
	}
	shipped := func(i int) []dcsync.Entry {
		r := rec(fmt.Sprint("w", i), "a", "a", dcsync.StageReship, t0.Add(time.Duration(i)*time.Second))
		r.Target = "b"
		return dcsync.PackRecords([]dcsync.Record{r})
	}
	for i := range 17 { // one past the bound: it takes an Append while within it
		if err := l.Append(ctx, process(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(ctx, process(17)); !errors.Is(err, dcsync.ErrAuditFull) {
		t.Fatalf("a log full of incomplete writes took another: %v", err)
	}
	for i := range 16 { // w16 is not acknowledged: the chunk holding it stays
		if err := l.Append(ctx, shipped(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(ctx, process(17)); !errors.Is(err, dcsync.ErrAuditFull) {
		t.Fatalf("a log whose oldest chunk is incomplete took a write: %v", err)
	}
	if r := l.Records("w15"); len(r) != 1 || r[0].Stage != dcsync.StageReship || l.Records("w16") == nil {
		t.Fatalf("dropped the wrong writes: w15 %v, w16 %v", l.Records("w15"), l.Records("w16"))
	}
	if err := l.Append(ctx, shipped(16)); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, process(17)); err != nil {
		t.Fatalf("a log of complete writes did not make room: %v", err)
	}
	if s := l.Stats(); s.Refused != 2 || s.Dropped < 9 || s.Records > 17 {
		t.Fatalf("stats %+v", s)
	}
}

// A full log's Syncer holds process entries back and appends the records
// of later stages: when the held batch comes, the completions that reached
// the log before it are kept for it, however many they are, and the batch
// is taken in one Append, not refused or looped on.
func TestCompletionsThatCameFirstAreKeptForTheirWrites(t *testing.T) {
	ctx := context.Background()
	l := memaudit.NewConfig(memaudit.Config{MaxRecords: 16}) // chunks of 2 records
	l.DeclarePeers("a", []string{"b"})
	var shipped, processed []dcsync.Record
	for i := range 40 { // more than the log holds
		at := t0.Add(time.Duration(i) * time.Millisecond)
		r := rec(fmt.Sprint("w", i), "a", "a", dcsync.StageReship, at)
		r.Target = "b"
		shipped = append(shipped, r)
		processed = append(processed, rec(r.ID, "a", "a", dcsync.StageProcess, at))
	}
	if err := l.Append(ctx, dcsync.PackRecords(shipped)); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, dcsync.PackRecords(processed)); err != nil {
		t.Fatalf("the held writes were refused: %v", err)
	}
	for _, id := range []string{"w0", "w39"} {
		if r := l.Records(id); len(r) != 2 {
			t.Fatalf("trail of %s: %v, want its process and reship records", id, r)
		}
	}
	// Complete, they make room for the next writes (the first Append may
	// carry the completions once more, past the process records).
	for i := 40; i < 42; i++ {
		if err := l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec(fmt.Sprint("w", i), "a", "a", dcsync.StageProcess, t0.Add(time.Second))})); err != nil {
			t.Fatal(err)
		}
	}
	if s := l.Stats(); s.Records > 16+2 {
		t.Fatalf("stats %+v: complete writes were not dropped", s)
	}
}
