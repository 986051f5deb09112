package dcsync_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/memlock"
	"github.com/dcsync/dcsync/transport/memory"
)

// writeN writes n requests in each datacenter and returns their IDs.
func (c *cluster) writeN(n int, keys int) map[string]bool {
	c.t.Helper()
	written := map[string]bool{}
	for i := range n {
		for _, dc := range c.names {
			req := &dcsync.Request{Key: fmt.Sprintf("key-%d", i%keys), Op: "set", Payload: []byte(dc)}
			if err := c.sync[dc].Write(context.Background(), req); err != nil {
				c.t.Fatal(err)
			}
			written[req.ID] = true
		}
	}
	return written
}

func TestReconcilerRepairsFailedAndSilentDeliveries(t *testing.T) {
	c := newCluster(t, 11, "unicom", "telecom")
	c.repairsUnderFaults(200, map[string]bool{})
}

// repairsUnderFaults writes n writes per datacenter while half the sends
// and 60% of telecom's applies fail, then lifts the faults, reconciles,
// and checks that every datacenter holds them and the written ones.
func (c *cluster) repairsUnderFaults(n int, written map[string]bool) {
	c.t.Helper()
	c.net.SetFaultsBetween(memory.Faults{Fail: 0.5}, c.names...)
	// Batches that fail whole wait in the queue and go again; requests
	// the peer fails on each of their tries are left to the reconciler.
	c.stores["telecom"].setFailRate(0.6)
	maps.Copy(written, c.writeN(n, 50))
	c.quiesce()
	if c.sync["unicom"].Stats().ShipFailed == 0 || c.sync["telecom"].Stats().ApplyFailed == 0 {
		c.t.Fatal("the faults did not bite; the test proves nothing")
	}
	c.net.SetFaultsBetween(memory.Faults{}, c.names...)
	c.stores["telecom"].setFailRate(0)
	c.reconcile(3)
	c.checkConverged(written)
}

// With one audit log per datacenter, the reconciler of each reads what
// the peers applied from their logs: it repairs what is missing, and a
// pass over a fully replicated window sends nothing, and reads no trail.
func TestReconcilerWithOneLogPerDatacenter(t *testing.T) {
	for _, perDC := range []bool{false, true} {
		t.Run(fmt.Sprint("perDC=", perDC), func(t *testing.T) {
			c := newClusterLogs(t, 13, perDC, "unicom", "telecom", "mobile")
			written := c.writeN(50, 20) // fully replicated
			c.quiesce()
			for _, dc := range c.names {
				own := &trailCounter{AuditLog: c.logs[dc]}
				r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: dc, Peers: c.net.Peers(dc, c.names...),
					Audit: own, PeerAudit: c.peerLogs(dc), Grace: -1})
				if err != nil {
					t.Fatal(err)
				}
				rep, err := r.RunOnce(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if rep.Scanned != 50 || rep.Complete != 50 || rep.Sent != 0 || rep.Repaired != 0 || own.trails != 0 {
					t.Fatalf("%s: a fully replicated window: %+v, %d pages of trails read", dc, rep, own.trails)
				}
			}
			c.repairsUnderFaults(100, written)
		})
	}
}

// A write acknowledged but never applied leaves no trace in the peer: the
// reconciler must find it from the missing apply record alone.
func TestReconcilerFindsStagesThatNeverLogged(t *testing.T) {
	c := newCluster(t, 5, "unicom", "telecom")
	lost := &recordingSender{} // acknowledges, delivers nothing: a peer that died after the ack
	s, err := dcsync.New(dcsync.Config{DC: "mobile", Processor: newStore(0, 9), Audit: c.audit,
		Peers: map[string]dcsync.Sender{"unicom": lost}})
	if err != nil {
		t.Fatal(err)
	}
	req := &dcsync.Request{Key: "k"}
	if err := s.Write(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "mobile", Audit: c.audit, Grace: -1,
		Peers: map[string]dcsync.Sender{"unicom": lost}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 1 || rep.Repaired != 1 || rep.Sent != 1 || lost.delivered()[req.ID] != 2 {
		t.Fatalf("report %+v, deliveries %v", rep, lost.delivered())
	}
	trail := c.audit.Records(req.ID)
	if last := trail[len(trail)-1]; last.Stage != dcsync.StageReship || last.Attempt != 2 {
		t.Fatalf("repair not recorded as attempt 2: %+v", last)
	}
}

func TestReconcilerCheckpointFollowsTheWindow(t *testing.T) {
	c := newCluster(t, 3, "unicom", "telecom")
	now := time.Now()
	clock := func() time.Time { return now }
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: c.audit, Grace: -1, Now: clock,
		Overlap: time.Millisecond, Peers: map[string]dcsync.Sender{"telecom": c.net.Sender("unicom", "telecom")}})
	if err != nil {
		t.Fatal(err)
	}
	c.writeN(10, 10)
	c.quiesce()
	now = time.Now()
	rep, err := r.RunOnce(context.Background())
	if err != nil || rep.Scanned != 10 || rep.Complete != 10 {
		t.Fatalf("first pass: %+v, %v", rep, err)
	}
	time.Sleep(5 * time.Millisecond)
	c.writeN(3, 10)
	c.quiesce()
	now = time.Now()
	rep, err = r.RunOnce(context.Background())
	if err != nil || rep.Scanned != 3 {
		t.Fatalf("second pass read %d writes, want only the 3 new ones: %+v, %v", rep.Scanned, rep, err)
	}
}

func TestReconcilerKeepsFailingWritesInTheWindow(t *testing.T) {
	c := newCluster(t, 4, "unicom", "telecom")
	c.net.SetFaultsBetween(memory.Faults{Fail: 1}, c.names...)
	written := c.writeN(5, 5)
	c.quiesce()
	peers := map[string]dcsync.Sender{"telecom": c.net.Sender("unicom", "telecom")}
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: c.audit, Grace: -1, Overlap: time.Millisecond,
		Peers: peers, Backoff: dcsync.Backoff{Initial: time.Millisecond, Attempts: 2}})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := r.RunOnce(context.Background())
	if rep.Failing != 5 {
		t.Fatalf("report with the link down: %+v", rep)
	}
	c.net.SetFaultsBetween(memory.Faults{}, c.names...)
	rep, _ = r.RunOnce(context.Background())
	if rep.Repaired != 5 {
		t.Fatalf("the failing writes were not kept for the next pass: %+v", rep)
	}
	for id := range written {
		if c.sync["unicom"] != nil && c.stores["telecom"].applies[id] == 0 && c.stores["unicom"].applies[id] == 0 {
			t.Fatalf("%s applied nowhere", id)
		}
	}
}

func TestOneReconcilerLeads(t *testing.T) {
	c := newCluster(t, 1, "unicom", "telecom")
	var lock memlock.Lock
	mk := func() *dcsync.Reconciler {
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: c.audit, Lock: &lock,
			Peers: map[string]dcsync.Sender{"telecom": c.net.Sender("unicom", "telecom")}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := mk(), mk()
	ra, _ := a.RunOnce(context.Background())
	rb, _ := b.RunOnce(context.Background())
	if !ra.Leader || rb.Leader {
		t.Fatalf("leaders: a=%v b=%v, want only a", ra.Leader, rb.Leader)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != context.Canceled { // releases the lock on the way out
		t.Fatalf("Run: %v", err)
	}
	if rb, _ = b.RunOnce(context.Background()); !rb.Leader {
		t.Fatal("b did not take over after a released the lock")
	}
}

// The property of the whole library: whatever the faults, after
// reconciliation every datacenter holds every write, applied once, and
// every key has the same winner everywhere.
func TestConvergesUnderRandomFaults(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			names := []string{"unicom", "telecom", "mobile"}[:2+rng.IntN(2)]
			c := newCluster(t, seed, names...)
			for _, a := range names {
				for _, b := range names {
					if a != b {
						c.net.SetFaults(a, b, memory.Faults{Fail: rng.Float64() * 0.4, DropAck: rng.Float64() * 0.3,
							Duplicate: rng.Float64() * 0.5, Reorder: rng.Float64(), Delay: time.Duration(rng.IntN(200)) * time.Microsecond})
					}
				}
				c.stores[a].setFailRate(rng.Float64() * 0.2)
			}
			written := c.writeN(100+rng.IntN(200), 1+rng.IntN(30))
			c.quiesce()
			c.net.SetFaultsBetween(memory.Faults{Duplicate: 0.5, Reorder: 0.5}, c.names...) // the network heals, still at-least-once
			for _, dc := range names {
				c.stores[dc].setFailRate(0)
			}
			c.reconcile(3)
			c.checkConverged(written)
		})
	}
}

// Two datacenters write the same keys at once: a processor honouring
// Version ends with the same value everywhere.
func TestConcurrentWritesToOneKeyConverge(t *testing.T) {
	c := newCluster(t, 8, "unicom", "telecom")
	c.net.SetFaultsBetween(memory.Faults{Reorder: 0.5, Delay: 100 * time.Microsecond}, c.names...)
	done := make(chan map[string]bool, 2)
	for _, dc := range c.names {
		go func() {
			ids := map[string]bool{}
			for i := range 300 {
				req := &dcsync.Request{Key: fmt.Sprint("hot-", i%3), Payload: []byte(dc)}
				if err := c.sync[dc].Write(context.Background(), req); err != nil {
					t.Error(err)
				}
				ids[req.ID] = true
			}
			done <- ids
		}()
	}
	written := <-done
	for id := range <-done {
		written[id] = true
	}
	c.quiesce()
	c.reconcile(3)
	c.checkConverged(written)
}

// trailCounter counts the pages of trails of the past read from an
// AuditLog.
type trailCounter struct {
	dcsync.AuditLog
	trails int
}

func (c *trailCounter) Trails(ctx context.Context, q dcsync.TrailQuery) (dcsync.TrailPage, error) {
	if q.From.Before(time.Now()) { // not the count of writes dated in the future
		c.trails++
	}
	return c.AuditLog.Trails(ctx, q)
}

// A trail with no source record, as when the origin died before its
// process record reached the log, is reported orphaned and logged at
// error level; a write dated ahead of the clock is reported as not seen.
func TestReconcilerReportsWhatItCannotRepairOrSee(t *testing.T) {
	ctx := context.Background()
	log := auditmem.New(0)
	now := time.Now()
	orphan := dcsync.Record{ID: "0190f5f0-0000-7000-8000-0000000000a1", DC: "telecom", Origin: "unicom",
		Stage: dcsync.StageApply, Status: dcsync.StatusOK, Attempt: 1, Written: now.Add(-time.Minute), Time: now}
	future := dcsync.Record{ID: "0190f5f0-0000-7000-8000-0000000000a2", DC: "unicom", Origin: "unicom",
		Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1, Written: now.Add(time.Hour), Time: now,
		Request: &dcsync.Request{ID: "0190f5f0-0000-7000-8000-0000000000a2", Origin: "unicom", Key: "k"}}
	if err := log.Append(ctx, dcsync.PackRecords([]dcsync.Record{orphan, future})); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: log, Grace: -1,
		Peers:  map[string]dcsync.Sender{"telecom": &recordingSender{}},
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orphaned != 1 || rep.Future != 1 {
		t.Fatalf("report %+v, want one orphaned and one future", rep)
	}
	if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "orphaned=1") {
		t.Fatalf("log %q, want the orphan at error level", logged.String())
	}
}
