package elastic_test

import (
	"context"
	"testing"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
)

// template3 is the mapping of the daily indices before the writes of a
// document were packed (template version 3): every ID a keyword, written
// times in x.w, no last.
const template3 = `{"settings":{"index":{"number_of_shards":1,"number_of_replicas":0,
"sort.field":["written"],"sort.order":["asc"]}},
"mappings":{"dynamic":"strict","properties":{"dc":{"type":"keyword"},"origin":{"type":"keyword"},
"stage":{"type":"keyword"},"status":{"type":"keyword"},"target":{"type":"keyword"},
"attempt":{"type":"integer"},"error":{"type":"text"},"written":{"type":"date_nanos"},
"time":{"type":"date_nanos"},"ids":{"type":"keyword","doc_values":false},
"x":{"type":"object","enabled":false}}}}`

// A daily index made by template 3 (today's, when a deployment upgrades)
// takes the new documents — New adds the fields they need to its mapping —
// and its old documents read and trace as before, beside the new ones.
func TestUpgradeFromTemplate3(t *testing.T) {
	ctx := context.Background()
	url := testserver.Elastic(t)
	prefix := testserver.IndexPrefix(t, url)
	c, err := olivere.NewClient(olivere.SetURL(url), olivere.SetSniff(false), olivere.SetHealthcheck(false))
	if err != nil {
		t.Fatal(err)
	}
	day := prefix + "-2026.11.25"
	if _, err := c.CreateIndex(day).BodyString(template3).Do(ctx); err != nil {
		t.Fatal(err)
	}
	// A process entry of two writes as template 3 stored it: a UUID
	// packed as "~" and base64url, another ID as it is, and their written
	// times in nanoseconds after written.
	const user, other = "0190a3b4-7c2e-7000-8000-000000000001", "req-old"
	w := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	old := `{"dc":"a","origin":"a","stage":"process","status":"ok","attempt":1,
"written":"2026-11-25T09:00:00Z","time":"2026-11-25T09:00:00.001Z",
"ids":["~AZCjtHwucACAAAAAAAAAAQ","req-old"],"x":{"n":2,"h":0,"w":[0,5]}}`
	if _, err := c.Index().Index(day).Id("old").BodyString(old).Refresh("true").Do(ctx); err != nil {
		t.Fatal(err)
	}

	l := newLog(t, esaudit.Config{IndexPrefix: prefix})
	mine := "01a211ee-ea80-7005-8000-000000000007" // a UUIDv7 of w's millisecond, as dcsync makes them
	if ms := time.UnixMilli(0x01a211eeea80); !ms.Equal(w) {
		t.Fatalf("the test's ID is of %v, not %v", ms, w)
	}
	if err := l.Append(ctx, dcsync.PackRecords([]dcsync.Record{
		rec(mine, "a", "a", dcsync.StageProcess, w),
		rec(user, "b", "a", dcsync.StageApply, w), rec(other, "b", "a", dcsync.StageApply, w.Add(5)),
		rec(mine, "b", "a", dcsync.StageApply, w)})); err != nil {
		t.Fatal(err)
	}
	flush(t, l)
	if st := l.Stats(); st.Rejected != 0 {
		t.Fatalf("stats %+v: documents refused by the old index", st)
	}
	for _, id := range []string{user, other, mine} {
		recs, err := l.Records(ctx, id)
		if err != nil || len(recs) != 2 || recs[0].Stage != dcsync.StageProcess || recs[1].Stage != dcsync.StageApply {
			t.Fatalf("trace of %s: %+v, %v; want its process and apply records", id, recs, err)
		}
	}
	page, err := l.Trails(ctx, dcsync.TrailQuery{Origin: "a", From: w, To: w.Add(time.Second)})
	if err != nil || len(page.Trails) != 3 {
		t.Fatalf("trails %+v, %v; want 3", page, err)
	}
	for _, tr := range page.Trails {
		if !tr.Applied("b") || !tr.Applied("a") {
			t.Fatalf("trail %s: %+v", tr.ID, tr.Records)
		}
		if want := map[string]time.Time{user: w, other: w.Add(5), mine: w}[tr.ID]; !tr.Records[0].Written.Equal(want) {
			t.Fatalf("trail %s written %v, want %v", tr.ID, tr.Records[0].Written, want)
		}
	}
}
