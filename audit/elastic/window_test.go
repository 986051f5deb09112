package elastic

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// TestWindowCostFollowsTheWindow counts, with Elasticsearch's profiler, the
// documents that a pass of Trails pages over a window visits, in an index
// holding the window's writes and 1x that many writes of history earlier the
// same day, and in one holding 10x: the counts are the work done, free of
// the noise that timing it would carry. They must not grow with the history,
// nor with the square of the window, as they would if each page searched the
// rest of the window.
func TestWindowCostFollowsTheWindow(t *testing.T) {
	ctx := context.Background()
	url := testserver.Elastic(t)
	const window, limit = 500, 50
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
		if err := l.Append(ctx, dcsync.PackRecords(recs)); err != nil {
			t.Fatal(err)
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		l.visited = new(atomic.Int64)
		q, trails := dcsync.TrailQuery{Origin: "unicom", From: from, To: to, Limit: limit}, 0
		for pages := 0; ; pages++ {
			page, err := l.Trails(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			trails += len(page.Trails)
			if page.Next == "" {
				break
			}
			if pages > 2*window/limit {
				t.Fatal("paging does not end")
			}
			q.After = page.Next
		}
		if trails != window {
			t.Fatalf("%dx: %d trails, want %d", history, trails, window)
		}
		visited[history] = l.visited.Load()
	}
	t.Logf("documents visited by a pass over %d writes in pages of %d: %d with 1x history, %d with 10x",
		window, limit, visited[1], visited[10])
	if visited[1] == 0 || visited[10] > visited[1]*12/10 || visited[10] > 3*window {
		t.Fatalf("documents visited: %d with 1x history, %d with 10x: the cost follows the history or the window's square",
			visited[1], visited[10])
	}
}
