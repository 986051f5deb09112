package elastic_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/hlc"
	"github.com/dcsync/dcsync/transport/memory"
)

// store is a datacenter's state: the writes it applied. Applies of keys
// starting with "flaky" fail while failing is set.
type store struct {
	mu      sync.Mutex
	applied map[string]bool
	failing bool
}

func newStore() *store { return &store{applied: map[string]bool{}} }

func (s *store) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing && strings.HasPrefix(req.Key, "flaky") {
		return fmt.Errorf("database timeout")
	}
	s.applied[req.ID] = true
	return nil
}

func (s *store) setFailing(v bool) {
	s.mu.Lock()
	s.failing = v
	s.mu.Unlock()
}

func (s *store) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[id]
}

// dropReship is the Reship of a process that dies right after applying a
// write locally: nothing after the process record is ever logged.
type dropReship struct{}

func (dropReship) Reship(context.Context, *dcsync.Request) error { return nil }

// TestReconcilerRepairsFailedAndSilentStages writes from unicom to telecom
// through three kinds of breakage — a failed send, a failed apply, and a
// process that died before sending (its write has a process record and
// nothing else) — and checks that a reconciler reading Elasticsearch finds
// and repairs every broken write, and that a restarted one resumes from the
// checkpoint with nothing left to do. It runs both deployments: one log
// shared by both datacenters, and one log (an index prefix) per datacenter.
func TestReconcilerRepairsFailedAndSilentStages(t *testing.T) {
	for _, perDC := range []bool{false, true} {
		t.Run(fmt.Sprint("perDC=", perDC), func(t *testing.T) { reconcilerRepairs(t, perDC) })
	}
}

func reconcilerRepairs(t *testing.T, perDC bool) {
	ctx := context.Background()
	l := newLog(t, elastic.Config{})
	logs := map[string]*elastic.Log{"unicom": l, "telecom": l}
	if perDC {
		logs["telecom"] = newLog(t, elastic.Config{})
	}
	net := memory.NewNetwork(1)
	unicom, telecom := newStore(), newStore()
	newSyncer := func(dc, peer string, proc dcsync.Processor, reship dcsync.Reship) *dcsync.Syncer {
		s, err := dcsync.New(dcsync.Config{DC: dc, Peers: map[string]dcsync.Sender{peer: net.Sender(dc, peer)},
			Processor: proc, Audit: logs[dc], Reship: reship, Logger: quiet,
			Delivery: dcsync.Delivery{Probe: -1, // failures are the reconciler's
				Backoff: dcsync.Backoff{Attempts: 1, Initial: time.Millisecond, Max: 10 * time.Millisecond}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	u := newSyncer("unicom", "telecom", unicom, nil)
	crashing := newSyncer("unicom", "telecom", unicom, dropReship{})
	net.Attach("telecom", newSyncer("telecom", "unicom", telecom, nil).Collector())

	broken := map[string]string{} // request ID -> how it broke
	write := func(s *dcsync.Syncer, key, how string) {
		req := &dcsync.Request{Key: key, Op: "set", Payload: []byte(key)}
		if err := s.Write(ctx, req); err != nil {
			t.Fatal(err)
		}
		if how != "" {
			broken[req.ID] = how
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		write(u, fmt.Sprint("ok", i), "")
	}
	net.SetFaults("unicom", "telecom", memory.Faults{Fail: 1})
	for i := range 20 {
		failed := u.Stats().ShipFailed
		write(u, fmt.Sprint("sent", i), "send failed")
		// Flush does not wait for a peer marked down: wait for the try.
		for deadline := time.Now().Add(time.Minute); u.Stats().ShipFailed == failed; {
			if time.Now().After(deadline) {
				t.Fatal("the delivery to a failing link was never tried")
			}
			time.Sleep(time.Millisecond)
		}
	}
	net.SetFaults("unicom", "telecom", memory.Faults{})
	telecom.setFailing(true)
	for i := range 20 {
		write(u, fmt.Sprint("flaky", i), "apply failed")
	}
	telecom.setFailing(false)
	for i := range 20 {
		write(crashing, fmt.Sprint("silent", i), "never logged")
	}
	flush(t, l)
	flush(t, logs["telecom"])
	for id, how := range broken {
		if telecom.has(id) {
			t.Fatalf("write %s (%s) reached telecom: nothing to repair", id, how)
		}
	}

	reconciler := func() *dcsync.Reconciler {
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom",
			Peers: map[string]dcsync.Sender{"telecom": net.Sender("unicom", "telecom")},
			Audit: l, PeerAudit: map[string]dcsync.AuditLog{"telecom": logs["telecom"]},
			Checkpoints: l.Checkpoints(), Grace: -1, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rep, err := reconciler().RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 80 || rep.Repaired != len(broken) || rep.Failing != 0 || rep.Complete != 20 {
		t.Fatalf("report %+v, want 80 scanned, 20 complete, %d repaired", rep, len(broken))
	}
	for id, how := range broken {
		if !telecom.has(id) {
			t.Errorf("write %s (%s) not repaired", id, how)
		}
	}

	flush(t, l) // the repairs' records
	flush(t, logs["telecom"])
	rep, err = reconciler().RunOnce(ctx) // a restarted process
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 0 || rep.Failing != 0 || rep.Sent != 0 || rep.Scanned != rep.Complete {
		t.Fatalf("second pass %+v, want nothing to repair", rep)
	}
	if rep.From.Before(time.Now().Add(-10 * time.Minute)) {
		t.Fatalf("second pass read from %v: the checkpoint was not kept", rep.From)
	}
}

// seed appends the trails of n writes of origin unicom, written from start
// on, one every step, straight to the log, as the stages would have logged
// them, and flushes the log. With broken set, every twentieth write is
// broken in one of three ways. It returns the IDs of the broken writes.
func seed(t testing.TB, l *elastic.Log, n int, start time.Time, step time.Duration, broken bool) map[string]bool {
	ctx := context.Background()
	ids := map[string]bool{}
	var recs []dcsync.Record
	for i := range n {
		w := start.Add(time.Duration(i) * step).Truncate(time.Millisecond)
		id := fmt.Sprintf("w%d-%07d", start.UnixMilli(), i)
		req := &dcsync.Request{ID: id, Origin: "unicom", Key: fmt.Sprint("k", i%1000), Op: "set",
			Payload: []byte("v"), Version: hlc.FromTime(w)}
		r := dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess,
			Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w, Request: req}
		recs = append(recs, r)
		r.Request, r.Time = nil, w.Add(time.Millisecond)
		switch {
		case !broken || i%20 != 0: // delivered: telecom applied it
			r.DC, r.Stage = "telecom", dcsync.StageApply
			recs = append(recs, r)
		case i%60 == 0: // the send failed
			r.Stage, r.Status, r.Target, r.Error = dcsync.StageReship, dcsync.StatusFailed, "telecom", "connection refused"
			recs = append(recs, r)
			ids[id] = true
		case i%60 == 20: // telecom's apply failed
			r.DC, r.Stage = "telecom", dcsync.StageCollect
			recs = append(recs, r)
			r.Stage, r.Status, r.Error = dcsync.StageApply, dcsync.StatusFailed, "database timeout"
			recs = append(recs, r)
			ids[id] = true
		default: // the process died after applying: nothing more was logged
			ids[id] = true
		}
		if len(recs) >= 10000 || i == n-1 {
			if err := l.Append(ctx, dcsync.PackRecords(recs)); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	flush(t, l)
	return ids
}

// TestReconcilerRepairsEveryBrokenWriteOf100k seeds the audit trails of
// 100,000 writes, 5% of them broken, and lets a reconciler repair them over
// a link that fails a fifth of its sends.
func TestReconcilerRepairsEveryBrokenWriteOf100k(t *testing.T) {
	ctx := context.Background()
	l := newLog(t, elastic.Config{FlushActions: 5000})
	const writes = 100_000
	start := time.Now()
	broken := seed(t, l, writes, time.Now().Add(-20*time.Minute), 5*time.Millisecond, true)
	t.Logf("seeded %d writes in %v", writes, time.Since(start))
	start = time.Now()

	net := memory.NewNetwork(7)
	telecom := newStore()
	ts, err := dcsync.New(dcsync.Config{DC: "telecom", Processor: telecom, Audit: l, Logger: quiet,
		Peers: map[string]dcsync.Sender{"unicom": net.Sender("telecom", "unicom")}})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	net.Attach("telecom", ts.Collector())
	net.SetFaults("unicom", "telecom", memory.Faults{Fail: 0.2})
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom",
		Peers: map[string]dcsync.Sender{"telecom": net.Sender("unicom", "telecom")},
		Audit: l, Checkpoints: l.Checkpoints(), Grace: -1, Logger: quiet,
		Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != writes || rep.Complete != writes-len(broken) || rep.Repaired+rep.Failing != len(broken) {
		t.Fatalf("report %+v: want %d scanned, %d broken", rep, writes, len(broken))
	}
	t.Logf("first pass in %v: %+v", time.Since(start), rep)
	for pass := 2; rep.Failing > 0; pass++ { // what the injected faults left
		if pass > 5 {
			t.Fatalf("still failing after %d passes: %+v", pass, rep)
		}
		flush(t, l)
		if rep, err = r.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	telecom.mu.Lock()
	defer telecom.mu.Unlock()
	if len(telecom.applied) != len(broken) {
		t.Fatalf("telecom applied %d writes, want the %d broken ones", len(telecom.applied), len(broken))
	}
	for id := range broken {
		if !telecom.applied[id] {
			t.Fatalf("broken write %s not repaired", id)
		}
	}
}
