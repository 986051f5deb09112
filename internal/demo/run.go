package demo

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/transport/memory"
)

// Run is the quickstart's run: the two Datacenters in one process over the
// memory transport with injected faults, sharing one audit log, as they
// would share one Elasticsearch cluster. Each program supplies the log;
// the rest is the same whichever log it is.
type Run struct {
	Writes    int     // per datacenter
	Seed      uint64  // of the fault schedule and of the stores' failures
	SendFail  float64 // share of deliveries that fail
	ApplyFail float64 // share of telecom's applies that fail

	// Audit is the log both datacenters record to and reconcile from.
	Audit dcsync.AuditLog
	// Checkpoints keeps the reconcilers' checkpoints; nil keeps them in
	// memory.
	Checkpoints dcsync.CheckpointStore
	// FlushAudit makes every record appended so far readable; nil for a
	// log that reads its own writes at once.
	FlushAudit func(ctx context.Context) error
	// PrintCounts prints how many records each stage logged, per
	// datacenter and outcome.
	PrintCounts func(ctx context.Context, out io.Writer) error
}

// Flags registers the flags of the run's size, seed and fault rates on fs.
func (r *Run) Flags(fs *flag.FlagSet) {
	fs.IntVar(&r.Writes, "n", 1000, "writes per datacenter")
	fs.Uint64Var(&r.Seed, "seed", 1, "seed of the fault schedule")
	fs.Float64Var(&r.SendFail, "send-fail", 0.2, "share of deliveries that fail")
	fs.Float64Var(&r.ApplyFail, "apply-fail", 0.1, "share of telecom's applies that fail")
}

// Converge writes in both datacenters, prints what each stage recorded,
// lets the reconcilers repair what the faults broke, and checks from the
// processors' own state that every write reached every datacenter. It
// ends by printing "converged: X/X writes present in every datacenter",
// and fails when they are not.
func (r Run) Converge(ctx context.Context, out io.Writer) error {
	network := memory.NewNetwork(r.Seed)
	stores := map[string]*Store{}
	syncers := map[string]*dcsync.Syncer{}
	for _, dc := range Datacenters {
		peer := Other(dc)
		network.SetFaults(dc, peer, memory.Faults{Fail: r.SendFail, DropAck: 0.05, Duplicate: 0.1, Reorder: 0.3})
		stores[dc] = NewStore(dc, r.Seed)
		s, err := dcsync.New(dcsync.Config{
			DC:        dc,
			Peers:     map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Processor: stores[dc],
			Audit:     r.Audit,
			// One retry, then the write is left to the reconciler: fast
			// failure keeps the queues short while a link is bad.
			Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 2}},
			Logger:   Quiet,
		})
		if err != nil {
			return err
		}
		defer s.Close()
		network.Attach(dc, s.Collector())
		syncers[dc] = s
	}
	stores["telecom"].SetFailRate(r.ApplyFail)

	// Write in both datacenters at once, sometimes to the same keys.
	if err := WriteEverywhere(ctx, syncers, r.Writes); err != nil {
		return err
	}
	if err := r.flush(ctx, syncers); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v; before reconciliation:\n", r.Writes, Datacenters)
	if err := r.PrintCounts(ctx, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", Present(stores["unicom"], stores["telecom"]), 2*r.Writes)

	// One reconciler per datacenter repairs its own writes, from the
	// trails in the log. The faults stay: the reconciler retries with
	// backoff until each delivery succeeds.
	for _, dc := range Datacenters {
		peer := Other(dc)
		rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{
			DC:          dc,
			Peers:       map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Audit:       r.Audit,
			Checkpoints: r.Checkpoints,
			Grace:       -1, // everything written is done by now
			Backoff:     dcsync.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 8},
			Logger:      Quiet,
		})
		if err != nil {
			return err
		}
		for pass := 1; pass <= 10; pass++ {
			rep, err := rec.RunOnce(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "reconcile %s pass %d: scanned %d, complete %d, repaired %d, failing %d\n",
				dc, pass, rep.Scanned, rep.Complete, rep.Repaired, rep.Failing)
			// The next pass, and the count below, must see this pass's
			// deliveries and their records.
			if err := r.flush(ctx, syncers); err != nil {
				return err
			}
			if rep.Failing == 0 {
				break
			}
		}
	}
	n := Present(stores["unicom"], stores["telecom"])
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, 2*r.Writes)
	if n != 2*r.Writes {
		return fmt.Errorf("not converged: %d of %d writes missing somewhere", 2*r.Writes-n, 2*r.Writes)
	}
	return nil
}

// flush waits until the syncers have handed every record to the audit
// log, and the log has made them readable.
func (r Run) flush(ctx context.Context, syncers map[string]*dcsync.Syncer) error {
	for _, s := range syncers {
		if err := s.Flush(ctx); err != nil {
			return err
		}
	}
	if r.FlushAudit == nil {
		return nil
	}
	return r.FlushAudit(ctx)
}
