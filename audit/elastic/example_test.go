package elastic_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// Two datacenters log every stage of their writes to one Elasticsearch;
// the trail of a write then tells where it went.
func Example() {
	ctx := context.Background()
	log, err := esaudit.New(ctx, esaudit.Config{
		URLs:        []string{os.Getenv("DCSYNC_ELASTIC_URL")},
		IndexPrefix: "example-audit",
		// A service sets SpoolDir to a directory of its own, such as
		// /var/lib/myservice/audit-spool, so that records waiting for an
		// unreachable Elasticsearch survive a crash of the process.
	})
	if err != nil {
		panic(err)
	}
	defer log.Close()

	network := memtransport.NewNetwork(1)
	nop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	var unicom *dcsync.Syncer
	for _, dc := range []string{"unicom", "telecom"} {
		peer := map[string]string{"unicom": "telecom", "telecom": "unicom"}[dc]
		s, err := dcsync.New(dcsync.Config{DC: dc, Processor: nop, Audit: log,
			Peers: map[string]dcsync.Sender{peer: network.Sender(dc, peer)}})
		if err != nil {
			panic(err)
		}
		defer s.Close()
		network.Attach(dc, s.Collector())
		if dc == "unicom" {
			unicom = s
		}
	}

	req := &dcsync.Request{Key: "user:42", Op: "set", Payload: []byte("hello")}
	if err := unicom.Write(ctx, req, dcsync.WaitAll()); err != nil {
		panic(err)
	}
	unicom.Flush(ctx) // every record handed to the log
	// And searchable: Flush says when Elasticsearch lagged and records
	// still wait in the spool, to be replayed.
	for i := 0; i < 100 && log.Flush(ctx) != nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	recs, err := log.Records(ctx, req.ID)
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		fmt.Print(r.DC, " ", r.Stage, " ", r.Status)
		if r.Target != "" {
			fmt.Print(" to ", r.Target)
		}
		fmt.Println()
	}
	// Output:
	// unicom process ok
	// telecom apply ok
	// unicom reship ok to telecom
}

// Trails pages through the writes of one origin in a time window, each
// with its records from every datacenter. Appending the same records again
// changes nothing: their document IDs are derived from their contents.
func ExampleLog_Trails() {
	ctx := context.Background()
	log, err := esaudit.New(ctx, esaudit.Config{URLs: []string{os.Getenv("DCSYNC_ELASTIC_URL")},
		IndexPrefix: "example-trails"})
	if err != nil {
		panic(err)
	}
	defer log.Close()

	written := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var recs []dcsync.Record
	for i := range 3 {
		id := fmt.Sprint("w", i)
		w := written.Add(time.Duration(i) * time.Second)
		recs = append(recs,
			dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess,
				Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w,
				Request: &dcsync.Request{ID: id, Origin: "unicom", Key: "k", Version: 1}})
		if i != 1 { // w1 never reached telecom
			recs = append(recs, dcsync.Record{ID: id, DC: "telecom", Origin: "unicom",
				Stage: dcsync.StageApply, Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w.Add(time.Millisecond)})
		}
	}
	log.Append(ctx, dcsync.PackRecords(recs))
	log.Flush(ctx)

	q := dcsync.TrailQuery{Origin: "unicom", From: written, To: written.Add(time.Minute), Limit: 2}
	for {
		page, err := log.Trails(ctx, q)
		if err != nil {
			panic(err)
		}
		for _, t := range page.Trails {
			fmt.Printf("%s: %d records, applied in telecom: %v\n", t.ID, len(t.Records), t.Applied("telecom"))
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	// Output:
	// w0: 2 records, applied in telecom: true
	// w1: 1 records, applied in telecom: false
	// w2: 2 records, applied in telecom: true
}

// A reconciler reads the trails from Elasticsearch and keeps its checkpoint
// there, so a restarted process resumes where the last pass ended.
func ExampleLog_Checkpoints() {
	ctx := context.Background()
	log, err := esaudit.New(ctx, esaudit.Config{URLs: []string{os.Getenv("DCSYNC_ELASTIC_URL")},
		IndexPrefix: "example-checkpoints"})
	if err != nil {
		panic(err)
	}
	defer log.Close()

	network := memtransport.NewNetwork(1)
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{
		DC:          "unicom",
		Peers:       map[string]dcsync.Sender{"telecom": network.Sender("unicom", "telecom")},
		Audit:       log,
		Checkpoints: log.Checkpoints(),
	})
	if err != nil {
		panic(err)
	}
	rep, err := r.RunOnce(ctx)
	if err != nil {
		panic(err)
	}
	saved, err := log.Checkpoints().Load(ctx, "unicom")
	if err != nil {
		panic(err)
	}
	fmt.Println("checkpoint at the end of the window:", saved.Equal(rep.To))
	// Output:
	// checkpoint at the end of the window: true
}
