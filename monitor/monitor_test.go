package monitor_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/hop"
	"github.com/dcsync/dcsync/internal/obstest"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

func TestMonitorFollowsPeers(t *testing.T) {
	mesh, mons := obstest.Monitored(t, "a", "b", "c")
	mesh.Down("c")
	reqs := mesh.Write(t, "a", 20)

	// The writes for c wait in a's queue, tried again whenever c is
	// probed: wait until each was tried once.
	s := mons["a"].Snapshot(context.Background())
	for deadline := time.Now().Add(30 * time.Second); len(s.Failing) < 20 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		s = mons["a"].Snapshot(context.Background())
	}
	if s.Written != 20 || s.Rejected != 0 {
		t.Fatalf("written %d rejected %d, want 20 and 0", s.Written, s.Rejected)
	}
	b, c := s.Peer("b"), s.Peer("c")
	if b.Down || b.Shipped != 20 || b.Failed != 0 || b.Backlog != 0 || b.InFlight != 0 {
		t.Errorf("peer b: %+v", *b)
	}
	if !c.Down || c.DownSince.IsZero() || c.Shipped != 0 || c.Failed < 20 || c.LastError == "" {
		t.Errorf("peer c: %+v", *c)
	}
	if len(s.Failing) != 20 || s.Failing[0].Peer != "c" {
		t.Fatalf("failing: %+v", s.Failing)
	}
	ids := map[string]bool{}
	for _, r := range reqs {
		ids[r.ID] = true
	}
	for _, f := range s.Failing {
		if !ids[f.ID] {
			t.Errorf("failing write %s was not written", f.ID)
		}
	}

	// b measured the lag of a's writes it applied, and counted them.
	sb := mons["b"].Snapshot(context.Background())
	a := sb.Peer("a")
	n := 0 // the writes may straddle a minute
	for _, l := range a.Lag {
		n += l.Count
		if l.P50 > l.P99 || l.P99 > l.Max {
			t.Errorf("lag of a minute: %+v", l)
		}
	}
	if a.Collected != 20 || n != 20 || len(a.Lag) == 0 || len(a.Lag) > 2 {
		t.Errorf("b's view of a: %+v", *a)
	}

	// A delivery that succeeds clears the peer's down state and its failing writes.
	mesh.Net.SetFaults("a", "c", memtransport.Faults{})
	rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "a", Peers: map[string]dcsync.Sender{"c": mesh.Net.Sender("a", "c")},
		Audit: memaudit.New(0), Observer: mons["a"]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := hop.Err(hop.Of(mesh.Syncers["a"]).Ship(context.Background(), "c", nil, reqs)); err != nil {
		t.Fatal(err)
	}
	s = mons["a"].Snapshot(context.Background())
	if c := s.Peer("c"); c.Down || c.Shipped < 20 || len(s.Failing) != 0 {
		t.Errorf("after recovery: peer c %+v, failing %d", *c, len(s.Failing))
	}
	if len(s.Passes) != 1 || !s.Passes[0].Report.Leader {
		t.Errorf("passes: %+v", s.Passes)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}
