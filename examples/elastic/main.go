// Command elastic is the quickstart with its audit log in Elasticsearch: two
// datacenters, unicom and telecom, in one process over the memory transport
// with injected faults, logging every stage to Elasticsearch. It writes in
// both, prints what each stage recorded (read back from Elasticsearch), runs
// each datacenter's reconciler from the log, and checks from the processors'
// own state that every write reached every datacenter.
//
//	go run ./examples/elastic -elastic http://127.0.0.1:9200 -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/demo"
	"github.com/dcsync/dcsync/transport/memory"
)

func main() {
	o := options{elastic: os.Getenv("DCSYNC_ELASTIC_URL")}
	if o.elastic == "" {
		o.elastic = "http://127.0.0.1:9200"
	}
	flag.StringVar(&o.elastic, "elastic", o.elastic, "Elasticsearch URL (default $DCSYNC_ELASTIC_URL)")
	flag.StringVar(&o.prefix, "index-prefix", "dcsync-example", "index prefix of the audit log")
	flag.IntVar(&o.writes, "n", 1000, "writes per datacenter")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the fault schedule")
	flag.Float64Var(&o.sendFail, "send-fail", 0.2, "share of deliveries that fail")
	flag.Float64Var(&o.applyFail, "apply-fail", 0.1, "share of telecom's applies that fail")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "elastic:", err)
		os.Exit(1)
	}
}

type options struct {
	elastic, prefix     string
	writes              int
	seed                uint64
	sendFail, applyFail float64
}

var datacenters = demo.Datacenters

// quiet drops the library's log lines, so the output shows only the counts;
// a service would pass its own logger.
var quiet = slog.New(slog.DiscardHandler)

func run(ctx context.Context, out io.Writer, o options) error {
	// One audit log for both datacenters, as they would share one cluster.
	audit, err := elastic.New(ctx, elastic.Config{URLs: []string{o.elastic}, IndexPrefix: o.prefix, Logger: quiet})
	if err != nil {
		return err
	}
	defer audit.Close()

	network := memory.NewNetwork(o.seed)
	stores := map[string]*demo.Store{}
	syncers := map[string]*dcsync.Syncer{}
	for _, dc := range datacenters {
		peer := demo.Other(dc)
		network.SetFaults(dc, peer, memory.Faults{Fail: o.sendFail, DropAck: 0.05, Duplicate: 0.1, Reorder: 0.3})
		stores[dc] = demo.NewStore(dc, o.seed)
		s, err := dcsync.New(dcsync.Config{
			DC:        dc,
			Peers:     map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Processor: stores[dc],
			Audit:     audit,
			// One retry, then the write is left to the reconciler.
			Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 2}},
			Logger:   quiet,
		})
		if err != nil {
			return err
		}
		defer s.Close()
		network.Attach(dc, s.Collector())
		syncers[dc] = s
	}
	stores["telecom"].SetFailRate(o.applyFail)

	if err := demo.WriteEverywhere(ctx, syncers, o.writes); err != nil {
		return err
	}
	if err := flush(ctx, audit, syncers); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v; before reconciliation:\n", o.writes, datacenters)
	if err := printCounts(ctx, out, audit.Client(), o.prefix); err != nil {
		return err
	}
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", demo.Present(stores["unicom"], stores["telecom"]), 2*o.writes)

	// One reconciler per datacenter repairs its own writes, from the trails
	// in Elasticsearch, keeping its checkpoint there. The faults stay.
	for _, dc := range datacenters {
		peer := demo.Other(dc)
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{
			DC:          dc,
			Peers:       map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Audit:       audit,
			Checkpoints: audit.Checkpoints(),
			Grace:       -1, // everything written is done by now
			Backoff:     dcsync.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 8},
			Logger:      quiet,
		})
		if err != nil {
			return err
		}
		for pass := 1; pass <= 10; pass++ {
			rep, err := r.RunOnce(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "reconcile %s pass %d: scanned %d, complete %d, repaired %d, failing %d\n",
				dc, pass, rep.Scanned, rep.Complete, rep.Repaired, rep.Failing)
			// The next pass must see this one's records.
			if err := flush(ctx, audit, syncers); err != nil {
				return err
			}
			if rep.Failing == 0 {
				break
			}
		}
	}
	n := demo.Present(stores["unicom"], stores["telecom"])
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, 2*o.writes)
	if n != 2*o.writes {
		return fmt.Errorf("not converged: %d of %d writes missing somewhere", 2*o.writes-n, 2*o.writes)
	}
	return nil
}

// flush waits until the syncers have handed every record to the audit log,
// and the log has made them searchable.
func flush(ctx context.Context, audit *elastic.Log, syncers map[string]*dcsync.Syncer) error {
	for _, s := range syncers {
		if err := s.Flush(ctx); err != nil {
			return err
		}
	}
	return audit.Flush(ctx)
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
