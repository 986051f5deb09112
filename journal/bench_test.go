package journal_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/journal"
)

// BenchmarkWrite is one write's journal work as a Syncer does it, from
// parallel writers: append, mark applied, mark acknowledged by one peer.
func BenchmarkWrite(b *testing.B) {
	j, err := journal.Open(b.TempDir(), journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Recover([]string{"telecom"}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	payload := make([]byte, 256)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r := &dcsync.Request{ID: "0190f5f0-0000-7000-8000-" + strconv.FormatInt(1e11+i, 10), Origin: "unicom",
				Key: "k", Op: "set", Payload: payload, Version: uint64(i)}
			if err := j.Append(r); err != nil {
				b.Fatal(err)
			}
			j.Applied(r.ID)
			j.Acked("telecom", []string{r.ID})
		}
	})
}
