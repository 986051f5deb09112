// Command elastic is the quickstart with its audit log in Elasticsearch: two
// datacenters, unicom and telecom, in one process over the memory transport
// with injected faults, logging every stage to Elasticsearch. It writes in
// both, prints what each stage recorded (read back from Elasticsearch with
// one aggregation), runs each datacenter's reconciler from the log, with
// its checkpoint kept there too, and checks from the processors' own state
// that every write reached every datacenter.
//
//	go run ./examples/elastic -elastic http://127.0.0.1:9200 -n 1000
//
// It is a self-contained program: copy it into a module of your own that
// requires github.com/dcsync/dcsync, and it runs the same.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

type options struct {
	elastic, prefix string
	writes          int     // per datacenter
	sendFail        float64 // share of deliveries that fail
}

func main() {
	o := options{elastic: os.Getenv("DCSYNC_ELASTIC_URL")}
	if o.elastic == "" {
		o.elastic = "http://127.0.0.1:9200"
	}
	flag.StringVar(&o.elastic, "elastic", o.elastic, "Elasticsearch URL (default $DCSYNC_ELASTIC_URL)")
	flag.StringVar(&o.prefix, "index-prefix", "dcsync-example", "index prefix of the audit log")
	flag.IntVar(&o.writes, "n", 1000, "writes per datacenter")
	flag.Float64Var(&o.sendFail, "send-fail", 0.2, "share of deliveries that fail")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "elastic:", err)
		os.Exit(1)
	}
}

var (
	datacenters = []string{"unicom", "telecom"}
	peerOf      = map[string]string{"unicom": "telecom", "telecom": "unicom"}
	quiet       = slog.New(slog.DiscardHandler) // a service passes its own logger
)

func run(ctx context.Context, out io.Writer, o options) error {
	// One audit log for both datacenters, as one Elasticsearch cluster; the
	// reconcilers keep their checkpoints in it too.
	audit, err := esaudit.New(ctx, esaudit.Config{URLs: []string{o.elastic}, IndexPrefix: o.prefix, Logger: quiet})
	if err != nil {
		return err
	}
	defer audit.Close()

	network := memtransport.NewNetwork(1)
	network.SetFaultsBetween(memtransport.Faults{Fail: o.sendFail, Duplicate: 0.1, Reorder: 0.3}, datacenters...)
	stores := map[string]*store{}
	syncers := map[string]*dcsync.Syncer{}
	for _, dc := range datacenters {
		stores[dc] = &store{applied: map[string]bool{}}
		s, err := dcsync.New(dcsync.Config{DC: dc, Processor: stores[dc], Audit: audit, Logger: quiet,
			Peers: map[string]dcsync.Sender{peerOf[dc]: network.Sender(dc, peerOf[dc])},
			// No retry, no retry queue: a failed delivery is the
			// reconciler's at once, and small batches make some of them
			// fail in every run.
			Delivery: dcsync.Delivery{BatchSize: 32, Backoff: dcsync.Backoff{Attempts: 1}, Probe: -1}})
		if err != nil {
			return err
		}
		defer s.Close()
		network.Attach(dc, s.Collector())
		syncers[dc] = s
	}
	// sync waits until the writes are sent or given up, their records are in
	// the log, and the log has made them searchable.
	sync := func() error {
		for _, s := range syncers {
			if err := s.Flush(ctx); err != nil {
				return err
			}
		}
		return audit.Flush(ctx)
	}

	for i := range o.writes {
		for _, dc := range datacenters {
			req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set", Payload: fmt.Appendf(nil, "%s-%d", dc, i)}
			if err := syncers[dc].Write(ctx, req); err != nil {
				return err
			}
		}
	}
	if err := sync(); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v; recorded in Elasticsearch:\n", o.writes, datacenters)
	if err := printCounts(ctx, out, audit.Client(), o.prefix); err != nil {
		return err
	}
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", present(stores), 2*o.writes)

	for _, dc := range datacenters {
		rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: dc, Audit: audit, Logger: quiet,
			Peers:       map[string]dcsync.Sender{peerOf[dc]: network.Sender(dc, peerOf[dc])},
			Checkpoints: audit.Checkpoints(),
			Grace:       -1, // everything written is done by now
			Backoff:     dcsync.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 8}})
		if err != nil {
			return err
		}
		// The faults stay: a pass retries each delivery with backoff, and
		// the next pass takes what still failed.
		for pass, failing := 1, true; failing && pass <= 10; pass++ {
			rep, err := rec.RunOnce(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "reconcile %s pass %d: scanned %d, complete %d, repaired %d, failing %d\n",
				dc, pass, rep.Scanned, rep.Complete, rep.Repaired, rep.Failing)
			if err := sync(); err != nil {
				return err
			}
			failing = rep.Failing > 0
		}
	}
	n := present(stores)
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, 2*o.writes)
	if n != 2*o.writes {
		return errors.New("not converged")
	}
	return nil
}

// printCounts prints how many records each stage logged, per datacenter and
// outcome, with one aggregation over the audit indices.
func printCounts(ctx context.Context, out io.Writer, client *olivere.Client, prefix string) error {
	agg := olivere.NewCompositeAggregation().Size(100).Sources(
		olivere.NewCompositeAggregationTermsValuesSource("dc").Field("dc"),
		olivere.NewCompositeAggregationTermsValuesSource("stage").Field("stage"),
		olivere.NewCompositeAggregationTermsValuesSource("status").Field("status"))
	res, err := client.Search(prefix+"-*").Size(0).Aggregation("counts", agg).Do(ctx)
	if err != nil {
		return fmt.Errorf("count records: %w", err)
	}
	counts, _ := res.Aggregations.Composite("counts")
	for _, b := range counts.Buckets {
		fmt.Fprintf(out, "  %-8s %-8s %-6s %6d\n", b.Key["dc"], b.Key["stage"], b.Key["status"], b.DocCount)
	}
	return nil
}

// store stands in for a datacenter's database: it remembers which writes
// it applied.
type store struct {
	mu      sync.Mutex
	applied map[string]bool
}

// Process implements dcsync.Processor.
func (s *store) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	s.applied[req.ID] = true
	s.mu.Unlock()
	return nil
}

// present counts the writes every store has applied.
func present(stores map[string]*store) int {
	seen := map[string]int{}
	for _, s := range stores {
		s.mu.Lock()
		for id := range s.applied {
			seen[id]++
		}
		s.mu.Unlock()
	}
	n := 0
	for _, c := range seen {
		if c == len(stores) {
			n++
		}
	}
	return n
}
