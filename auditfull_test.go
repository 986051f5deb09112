package dcsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// With one small memory log per datacenter, a steady stream of writes
// never finds the log full for good: the writes it holds complete as the
// peer acknowledges them, even when those records reach the log before
// the writes' own, and the oldest chunks go.
func TestPerDatacenterMemoryLogsKeepTakingWrites(t *testing.T) {
	net := memtransport.NewNetwork(1)
	var unicom *dcsync.Syncer
	for _, dc := range []string{"unicom", "telecom"} {
		peer := map[string]string{"unicom": "telecom", "telecom": "unicom"}[dc]
		s, err := dcsync.New(dcsync.Config{DC: dc, Processor: newStore(0, 1),
			Audit: memaudit.NewConfig(memaudit.Config{MaxRecords: 8192}),
			Peers: map[string]dcsync.Sender{peer: net.Sender(dc, peer)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		net.Attach(dc, s.Collector())
		if dc == "unicom" {
			unicom = s
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 40_000 { // five times what the log holds
		if err := unicom.Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i%100)}); err != nil {
			t.Fatalf("write %d: %v (stats %+v)", i, err, unicom.Stats())
		}
	}
}
