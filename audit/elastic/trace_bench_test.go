package elastic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/hlc"
	"github.com/dcsync/dcsync/internal/testserver"
)

// BenchmarkTrace times what `dcsync trace ID` asks Elasticsearch (one
// Records call) on an index holding the audit trail of DCSYNC_TRACE_WRITES
// writes (default 1,000,000; the figure is for 10,000,000): each
// write's process entry (with its 256 B request), reship and apply, packed
// DCSYNC_TRACE_BATCH writes to an entry (default 16), accepted at 20,000
// writes/s on one day, one write in 1000 with an ID of the user's own
// (found by keyword, not by time). The entries are encoded as the Log
// encodes them and bulk-loaded straight, in indices named after the
// figures; an index already holding them is reused, and kept when
// DCSYNC_TRACE_KEEP is set, as loading 10M writes takes minutes. Each op
// traces one write picked at random; the medians and 99th percentiles of
// the two kinds of ID are reported, in ms.
func BenchmarkTrace(b *testing.B) {
	n, batch := envInt("DCSYNC_TRACE_WRITES", 1_000_000), envInt("DCSYNC_TRACE_BATCH", 16)
	ctx := context.Background()
	url := testserver.Elastic(b)
	prefix := fmt.Sprintf("dcsync-trace-%d-%d", n, batch)
	l, err := New(ctx, Config{URLs: []string{url}, IndexPrefix: prefix, SpoolDir: b.TempDir(),
		RefreshInterval: 30 * time.Second, Timeout: 5 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if os.Getenv("DCSYNC_TRACE_KEEP") == "" {
		defer func() {
			ctx := context.Background()
			_, _ = l.client.DeleteIndex(prefix+"-*", l.checkpointIndex()).Do(ctx)
			_, _ = l.client.IndexDeleteIndexTemplate(prefix).Do(ctx)
		}()
	}
	gen := traceWrites{start: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), rate: 20_000}
	docs := gen.docs(n, batch)
	if have, err := l.client.Count(prefix + "-*").Do(ctx); err != nil || have != int64(docs) {
		_, _ = l.client.DeleteIndex(prefix + "-*").Do(ctx)
		start := time.Now()
		if err := gen.load(ctx, l, n, batch); err != nil {
			b.Fatal(err)
		}
		if _, err := l.client.Refresh(prefix + "-*").Do(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %d writes in %d documents in %v", n, docs, time.Since(start).Round(time.Second))
	}
	if have, err := l.client.Count(prefix + "-*").Do(ctx); err != nil || have != int64(docs) {
		b.Fatalf("%d documents, %v; want %d", have, err, docs)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var byTime, byKeyword []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := r.IntN(n)
		if i%2 == 1 { // every other op, a write of the user's own ID
			k = k / 1000 * 1000
		}
		id, _ := gen.write(k)
		start := time.Now()
		recs, err := l.Records(ctx, id)
		took := time.Since(start)
		if err != nil || len(recs) != 3 {
			b.Fatalf("trace of write %d (%s): %d records, %v", k, id, len(recs), err)
		}
		if k%1000 == 0 {
			byKeyword = append(byKeyword, took)
		} else {
			byTime = append(byTime, took)
		}
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"uuidv7", byTime}, {"user", byKeyword}} {
		if len(m.d) == 0 {
			continue
		}
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1000, "ms-median-"+m.name)
		b.ReportMetric(float64(m.d[len(m.d)*99/100].Microseconds())/1000, "ms-p99-"+m.name)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// traceWrites makes the writes of BenchmarkTrace: the k-th is accepted
// k/rate after start.
type traceWrites struct {
	start time.Time
	rate  int
}

// write returns the ID and the version of the k-th write: made as dcsync
// makes it from the version, but for one in 1000, the user's own.
func (g traceWrites) write(k int) (string, uint64) {
	at := g.start.Add(time.Duration(k) * time.Second / time.Duration(g.rate))
	v := hlc.FromTime(at) + uint64(k%g.rate)&0x0fff
	if k%1000 == 0 {
		return fmt.Sprintf("order-%09d", k), v
	}
	return dcsyncID(v, uint64(k)), v
}

// entries returns the process, reship and apply entries of the writes
// [k, k+batch).
func (g traceWrites) entries(k, batch int, payload []byte) []dcsync.Entry {
	kinds := []dcsync.Entry{
		{DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1},
		{DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship, Status: dcsync.StatusOK, Target: "telecom", Attempt: 1},
		{DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply, Status: dcsync.StatusOK, Attempt: 1},
	}
	for i := k; i < k+batch; i++ {
		id, v := g.write(i)
		w := hlc.Time(v)
		for s := range kinds {
			e := &kinds[s]
			if s == 0 {
				e.Time = w
				e.Requests = append(e.Requests, &dcsync.Request{ID: id, Origin: "unicom", Key: "user:" + strconv.Itoa(i%100_000),
					Op: "set", Payload: payload, Version: v})
			}
			if e.Time.IsZero() {
				e.Time = w.Add(time.Duration(s) * time.Millisecond)
			}
			e.IDs, e.Written = append(e.IDs, id), append(e.Written, w)
		}
	}
	return kinds
}

// docs returns how many documents the writes make: entries split at
// seconds.
func (g traceWrites) docs(n, batch int) int {
	docs := 0
	for k := 0; k < n; k += batch {
		_, first := g.write(k)
		_, last := g.write(min(k+batch, n) - 1)
		docs += 3 * int(hlc.Time(last).Unix()-hlc.Time(first).Unix()+1)
	}
	return docs
}

// load bulk-loads the entries of n writes into l's indices, two bulk
// requests of about 5 MB in flight.
func (g traceWrites) load(ctx context.Context, l *Log, n, batch int) error {
	bodies := make(chan []byte, 2)
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for body := range bodies {
				res, err := l.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "POST", Path: "/_bulk",
					Params: map[string][]string{"filter_path": {"errors,items.*.error"}}, Body: string(body),
					ContentType: "application/x-ndjson"})
				if err == nil && strings.Contains(string(res.Body), `"errors":true`) {
					err = fmt.Errorf("bulk refused: %.500s", res.Body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	payload := []byte(strings.Repeat("0123456789abcdef", 16)) // 256 B
	e := &encoder{prefix: l.prefix}
	var buf []byte
	var err error
	for k := 0; k < n && len(errs) == 0; k += batch {
		for _, d := range g.entries(k, min(batch, n-k), payload) {
			if buf, _, err = e.appendPair(buf, &d); err != nil {
				break
			}
		}
		if len(buf) >= 5<<20 || k+batch >= n {
			bodies <- buf
			buf = nil
		}
	}
	close(bodies)
	wg.Wait()
	close(errs)
	if err != nil {
		return err
	}
	return <-errs
}
