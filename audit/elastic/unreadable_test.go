package elastic_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
)

// A document whose stored writes do not decode does not fail the page:
// Trails gives its records without their Request and counts them in
// TrailPage.Unreadable, so the reconciler can say it did not see them.
func TestTrailsCountUnreadableRecords(t *testing.T) {
	ctx := context.Background()
	prefix := testserver.IndexPrefix(t, testserver.Elastic(t))
	l := newLog(t, esaudit.Config{IndexPrefix: prefix})
	good, bad := rec("good", "a", "a", dcsync.StageProcess, t0), rec("bad", "a", "a", dcsync.StageProcess, t0.Add(2*time.Second))
	good.Request = &dcsync.Request{ID: "good", Origin: "a", Key: "k", Op: "set", Version: 1}
	bad.Request = &dcsync.Request{ID: "bad", Origin: "a", Key: "k", Op: "set", Version: 2}
	if err := l.Append(ctx, entries(good, bad)); err != nil {
		t.Fatal(err)
	}
	flush(t, l)

	// Damage the stored writes of bad's document, as a broken tool or a
	// mapping change might.
	c := l.Client()
	res, err := c.Search(prefix + "-*").Query(olivere.NewTermQuery("stage", "process")).Size(10).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// bad's document is the later one: written times sort as strings.
	var last *olivere.SearchHit
	var doc, lastDoc map[string]any
	for _, hit := range res.Hits.Hits {
		if err := json.Unmarshal(hit.Source, &doc); err != nil {
			t.Fatal(err)
		}
		if last == nil || doc["written"].(string) > lastDoc["written"].(string) {
			last, lastDoc, doc = hit, doc, nil
		}
	}
	if len(res.Hits.Hits) != 2 {
		t.Fatalf("%d process documents, want 2", len(res.Hits.Hits))
	}
	lastDoc["x"].(map[string]any)["b"] = []byte("not a batch of writes")
	if _, err := c.Index().Index(last.Index).Id(last.Id).BodyJson(lastDoc).Refresh("true").Do(ctx); err != nil {
		t.Fatal(err)
	}

	page, err := l.Trails(ctx, dcsync.TrailQuery{Origin: "a", From: t0.Add(-time.Minute), To: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if page.Unreadable != 1 || len(page.Trails) != 2 {
		t.Fatalf("page %+v, want both trails and one unreadable record", page)
	}
	for _, tr := range page.Trails {
		if got := tr.Source(); (got != nil) != (tr.ID == "good") {
			t.Errorf("trail %s: source %v", tr.ID, got)
		}
	}
}
