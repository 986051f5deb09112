// Command quickstart runs two datacenters, unicom and telecom, in one
// process on dcsync's embedded defaults: the memory transport with injected
// faults and the memory audit log. It writes in both, prints what each stage
// recorded, lets the reconcilers repair what the faults broke, and checks
// from the processors' own state that every write reached every datacenter.
//
//	go run ./examples/quickstart -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/transport/memory"
)

func main() {
	var o options
	flag.IntVar(&o.writes, "n", 1000, "writes per datacenter")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the fault schedule")
	flag.Float64Var(&o.sendFail, "send-fail", 0.2, "share of deliveries that fail")
	flag.Float64Var(&o.applyFail, "apply-fail", 0.1, "share of telecom's applies that fail")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

type options struct {
	writes              int
	seed                uint64
	sendFail, applyFail float64
}

var datacenters = []string{"unicom", "telecom"}

func run(ctx context.Context, out io.Writer, o options) error {
	network := memory.NewNetwork(o.seed)
	audit := auditmem.New(0) // one log for both, as one Elasticsearch cluster would be
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
			// One retry, then the write is left to the reconciler: fast
			// failure keeps the queues short while a link is bad.
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
	stores["telecom"].failRate = o.applyFail

	// Write in both datacenters at once, sometimes to the same keys.
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
	for _, dc := range datacenters {
		if err := syncers[dc].Flush(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v; before reconciliation:\n", o.writes, datacenters)
	printCounts(out, audit)
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", present(stores), 2*o.writes)

	// One reconciler per datacenter repairs its own writes. The faults stay:
	// the reconciler retries with backoff until each delivery succeeds.
	for _, dc := range datacenters {
		peer := other(dc)
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{
			DC:      dc,
			Peers:   map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Audit:   audit,
			Grace:   -1, // everything written is done by now
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 8},
			Logger:  quiet,
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
			if rep.Failing == 0 {
				break
			}
		}
	}
	for _, dc := range datacenters {
		if err := syncers[dc].Flush(ctx); err != nil {
			return err
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

// printCounts prints how many records each stage logged, per datacenter.
func printCounts(out io.Writer, audit *auditmem.Log) {
	counts := audit.Counts()
	var lines []string
	for k, n := range counts {
		lines = append(lines, fmt.Sprintf("  %-8s %-8s %-6s %6d", k.DC, k.Stage, k.Status, n))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
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
// per key, by (Version, Origin). Its applies of writes from other
// datacenters fail at failRate, like a flaky database.
type kvStore struct {
	dc       string
	failRate float64
	mu       sync.Mutex
	rng      *rand.Rand
	values   map[string]*dcsync.Request
	applied  map[string]bool
}

func newKVStore(dc string, seed uint64) *kvStore {
	return &kvStore{dc: dc, rng: rand.New(rand.NewPCG(seed, uint64(len(dc)))),
		values: map[string]*dcsync.Request{}, applied: map[string]bool{}}
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
