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
	"os"
	"time"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/demo"
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

var datacenters = demo.Datacenters

func run(ctx context.Context, out io.Writer, o options) error {
	network := memory.NewNetwork(o.seed)
	audit := auditmem.New(0) // one log for both, as one Elasticsearch cluster would be
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
	stores["telecom"].SetFailRate(o.applyFail)

	// Write in both datacenters at once, sometimes to the same keys.
	if err := demo.WriteEverywhere(ctx, syncers, o.writes); err != nil {
		return err
	}
	for _, dc := range datacenters {
		if err := syncers[dc].Flush(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v; before reconciliation:\n", o.writes, datacenters)
	demo.PrintCounts(out, audit)
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", demo.Present(stores["unicom"], stores["telecom"]), 2*o.writes)

	// One reconciler per datacenter repairs its own writes. The faults stay:
	// the reconciler retries with backoff until each delivery succeeds.
	for _, dc := range datacenters {
		peer := demo.Other(dc)
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
	n := demo.Present(stores["unicom"], stores["telecom"])
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, 2*o.writes)
	if n != 2*o.writes {
		return fmt.Errorf("not converged: %d of %d writes missing somewhere", 2*o.writes-n, 2*o.writes)
	}
	return nil
}
