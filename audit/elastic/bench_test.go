package elastic_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/elastic"
)

// BenchmarkAppend measures audit records per second into Elasticsearch,
// from Append until Flush has made them searchable.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l := newLog(b, elastic.Config{})
	req := &dcsync.Request{Key: "user:1", Op: "set", Payload: make([]byte, 64)}
	const batch = 1000
	recs := make([]dcsync.Record, batch)
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		w := time.Now()
		for i := range recs {
			id := fmt.Sprintf("b%09d", n+i)
			recs[i] = dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageApply,
				Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w}
			if i%4 == 0 { // one write in four: its process record, with the request
				r := *req
				r.ID = id
				recs[i].Stage, recs[i].Request = dcsync.StageProcess, &r
			}
		}
		if err := l.Append(ctx, recs[:min(batch, b.N-n)]); err != nil {
			b.Fatal(err)
		}
	}
	flush(b, l)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
