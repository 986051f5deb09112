package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/memory"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func rec(id, dc, origin string, stage dcsync.Stage, written time.Time) dcsync.Record {
	return dcsync.Record{ID: id, DC: dc, Origin: origin, Stage: stage, Status: dcsync.StatusOK, Written: written, Time: written}
}

func TestTrailsPagesThroughAWindow(t *testing.T) {
	ctx := context.Background()
	l := memory.New(0)
	var recs []dcsync.Record
	for i := range 50 {
		w := t0.Add(time.Duration(i%25) * time.Second) // two writes per second, out of order
		id := fmt.Sprintf("w%02d", i)
		recs = append(recs, rec(id, "a", "a", dcsync.StageProcess, w))
		recs = append(recs, rec(fmt.Sprintf("x%02d", i), "b", "b", dcsync.StageProcess, w)) // other origin
	}
	l.Append(ctx, recs)
	l.Append(ctx, []dcsync.Record{rec("w07", "b", "a", dcsync.StageApply, t0.Add(7*time.Second))})

	q := dcsync.TrailQuery{Origin: "a", From: t0.Add(5 * time.Second), To: t0.Add(20 * time.Second), Limit: 7}
	var got []string
	var prev time.Time
	for pages := 0; ; pages++ {
		page, err := l.Trails(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page.Trails {
			w := tr.Records[0].Written
			if w.Before(prev) || w.Before(q.From) || !w.Before(q.To) {
				t.Fatalf("trail %s written %v out of order or window", tr.ID, w)
			}
			prev = w
			got = append(got, tr.ID)
			if tr.ID == "w07" && (len(tr.Records) != 2 || !tr.Applied("b")) {
				t.Fatalf("trail w07 lacks the peer's record: %+v", tr.Records)
			}
		}
		if page.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q.After = page.Next
	}
	if len(got) != 30 { // seconds 5..19, two writes each
		t.Fatalf("got %d trails, want 30: %v", len(got), got)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s returned twice", id)
		}
		seen[id] = true
	}
	if _, err := l.Trails(ctx, dcsync.TrailQuery{Origin: "a", After: "garbage"}); err == nil {
		t.Fatal("a malformed cursor was accepted")
	}
}

func TestLogDropsOldestWritesPastItsBound(t *testing.T) {
	ctx := context.Background()
	l := memory.New(10)
	for i := range 25 {
		l.Append(ctx, []dcsync.Record{rec(fmt.Sprint("w", i), "a", "a", dcsync.StageProcess, t0.Add(time.Duration(i)*time.Second))})
	}
	if l.Len() != 10 || l.Records("w14") != nil || l.Records("w15") == nil {
		t.Fatalf("kept %d writes; w14 %v, w15 %v", l.Len(), l.Records("w14"), l.Records("w15"))
	}
	if n := l.Counts()[memory.Tally{DC: "a", Stage: dcsync.StageProcess, Status: dcsync.StatusOK}]; n != 25 {
		t.Fatalf("counts forgot evicted records: %d", n)
	}
}

func TestCountsHoldOnlyWhatWasAppended(t *testing.T) {
	l := memory.New(0)
	l.Append(context.Background(), []dcsync.Record{rec("w", "a", "a", dcsync.StageProcess, t0), rec("w", "b", "a", dcsync.StageApply, t0)})
	counts := l.Counts()
	if len(counts) != 2 {
		t.Fatalf("counts: %v", counts)
	}
}
