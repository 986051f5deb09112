package elastic

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// TestWindowCostFollowsTheWindow counts, with Elasticsearch's profiler,
// the documents a page of Trails visits in an index holding a window of
// writes and 1x that many writes of history earlier the same day, and in one
// holding 10x: the counts are the work done, free of the noise that timing
// it would carry, and they must not grow with the history.
func TestWindowCostFollowsTheWindow(t *testing.T) {
	ctx := context.Background()
	url := testserver.Elastic(t)
	const window = 500
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	from := day.Add(20 * time.Hour)
	to := from.Add(window * time.Second)
	visited := map[int]int64{}
	for _, history := range []int{1, 10} {
		l, err := New(ctx, Config{URLs: []string{url}, IndexPrefix: testserver.IndexPrefix(t, url),
			SpoolDir: t.TempDir(), FlushActions: 5000, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var recs []dcsync.Record
		add := func(n int, start time.Time, step time.Duration) {
			for i := range n {
				w := start.Add(time.Duration(i) * step)
				recs = append(recs, dcsync.Record{ID: fmt.Sprintf("w%d-%d", w.UnixNano(), i), DC: "unicom",
					Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w})
			}
		}
		add(history*window, day, 20*time.Hour/time.Duration(history*window))
		add(window, from, time.Second)
		if err := l.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		body, err := windowSearch("unicom", from, to, nil, window/2).Profile(true).Source()
		if err != nil {
			t.Fatal(err)
		}
		res, err := l.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "POST",
			Path: "/" + dayIndex(l.prefix, from) + "/_search", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Hits    struct{ Hits []json.RawMessage }
			Profile struct {
				Shards []struct {
					Searches []struct {
						Query []struct {
							Breakdown map[string]int64
						}
					}
				}
			}
		}
		if err := json.Unmarshal(res.Body, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Hits.Hits) != window/2 {
			t.Fatalf("%dx: %d hits, want %d", history, len(out.Hits.Hits), window/2)
		}
		for _, sh := range out.Profile.Shards {
			for _, s := range sh.Searches {
				for _, q := range s.Query {
					visited[history] += q.Breakdown["next_doc_count"] + q.Breakdown["advance_count"]
				}
			}
		}
	}
	t.Logf("documents visited for a page of %d: %d with 1x history, %d with 10x", window/2, visited[1], visited[10])
	if visited[1] == 0 || visited[10] > visited[1]*12/10 || visited[10] > 2*window {
		t.Fatalf("documents visited: %d with 1x history, %d with 10x: the cost follows the history", visited[1], visited[10])
	}
}
