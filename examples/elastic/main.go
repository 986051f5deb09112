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
	"math/rand/v2"
	"os"
	"sync"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/elastic"
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

var datacenters = []string{"unicom", "telecom"}

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
	stores := map[string]*kvStore{}
	syncers := map[string]*dcsync.Syncer{}
	for _, dc := range datacenters {
		peer := other(dc)
		network.SetFaults(dc, peer, memory.Faults{Fail: o.sendFail, DropAck: 0.05, Duplicate: 0.1, Reorder: 0.3})
		stores[dc] = newKVStore(dc, o.seed)
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
	stores["telecom"].setFailRate(o.applyFail)

	var wg sync.WaitGroup
	errs := make(chan error, len(datacenters))
	for _, dc := range datacenters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range o.writes {
				req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set",
					Payload: fmt.Appendf(nil, "%s-%d", dc, i)}
				if err := syncers[dc].Write(ctx, req); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := flush(ctx, audit, syncers); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v; before reconciliation:\n", o.writes, datacenters)
	if err := printCounts(ctx, out, audit.Client(), o.prefix); err != nil {
		return err
	}
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", present(stores), 2*o.writes)

	// One reconciler per datacenter repairs its own writes, from the trails
	// in Elasticsearch, keeping its checkpoint there. The faults stay.
	for _, dc := range datacenters {
		peer := other(dc)
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
	n := present(stores)
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, 2*o.writes)
	if n != 2*o.writes {
		return fmt.Errorf("not converged: %d of %d writes missing somewhere", 2*o.writes-n, 2*o.writes)
	}
	return nil
}

func other(dc string) string {
	if dc == datacenters[0] {
		return datacenters[1]
	}
	return datacenters[0]
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

// present counts the writes that every datacenter's store has applied.
func present(stores map[string]*kvStore) int {
	all := map[string]int{}
	for _, s := range stores {
		s.mu.Lock()
		for id := range s.applied {
			all[id]++
		}
		s.mu.Unlock()
	}
	n := 0
	for _, c := range all {
		if c == len(stores) {
			n++
		}
	}
	return n
}

// kvStore stands in for a datacenter's database and cache: last writer wins
// per key. Its applies of writes from other datacenters fail at failRate,
// like a flaky database.
type kvStore struct {
	dc       string
	mu       sync.Mutex
	failRate float64
	rng      *rand.Rand
	values   map[string]*dcsync.Request
	applied  map[string]bool
}

func newKVStore(dc string, seed uint64) *kvStore {
	return &kvStore{dc: dc, rng: rand.New(rand.NewPCG(seed, uint64(len(dc)))),
		values: map[string]*dcsync.Request{}, applied: map[string]bool{}}
}

func (s *kvStore) setFailRate(r float64) {
	s.mu.Lock()
	s.failRate = r
	s.mu.Unlock()
}

func (s *kvStore) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Origin != s.dc && s.rng.Float64() < s.failRate {
		return fmt.Errorf("%s: database timeout", s.dc)
	}
	if cur := s.values[req.Key]; cur == nil || req.Newer(cur.Version, cur.Origin) {
		s.values[req.Key] = req
	}
	s.applied[req.ID] = true
	return nil
}
