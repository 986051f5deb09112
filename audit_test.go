package dcsync_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
)

// A memory log full of writes that no peer has yet acknowledged drops
// none of them: Write waits, and fails with ErrAuditFull when its context
// ends; once a reconciler has delivered them, the log makes room, dropping
// the delivered ones, and writes go on.
func TestFullAuditLogPushesBackWithoutLosingWrites(t *testing.T) {
	log := memaudit.NewConfig(memaudit.Config{MaxRecords: 1024})
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	delivered := map[string]bool{}
	peer := &recordingSender{send: func(reqs []*dcsync.Request) error {
		if down.Load() {
			return errors.New("telecom unreachable")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reqs {
			delivered[r.ID] = true
		}
		return nil
	}}
	peers := map[string]dcsync.Sender{"telecom": peer}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: peers, Processor: noop, Audit: log, AuditQueue: 4096,
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var taken []string
	full := false
	for range 1_000_000 { // until the log pushes back, however fast the writers run ahead of its flusher
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		req := &dcsync.Request{Key: "k", Op: "set"}
		err := s.Write(ctx, req)
		cancel()
		if errors.Is(err, dcsync.ErrAuditFull) {
			full = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, req.ID)
	}
	if !full || s.Stats().AuditFull == 0 || s.Stats().AuditQueued == 0 || log.Stats().Refused == 0 {
		t.Fatalf("no push back: full %v, syncer %+v, log %+v", full, s.Stats(), log.Stats())
	}

	down.Store(false)
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Peers: peers, Audit: log, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		// Writes taken but not yet appended wait in the Syncer: a pass
		// delivers what the log holds, until it holds them all.
		fctx, fcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := s.Flush(fctx)
		fcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the Syncer never handed its held writes to the log: %+v", log.Stats())
		}
		if _, err := r.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.AuditQueued != 0 || st.AuditDropped != 0 {
		t.Fatalf("after Flush: %d audit records queued, %d dropped, want none", st.AuditQueued, st.AuditDropped)
	}
	// Each write is delivered, or still in the log, body and all.
	mu.Lock()
	for _, id := range taken {
		recs := log.Records(id)
		if !delivered[id] && !slices.ContainsFunc(recs, func(r dcsync.Record) bool { return r.Stage == dcsync.StageProcess && r.Request != nil }) {
			t.Fatalf("write %s lost: neither delivered nor in the audit log: %+v", id, recs)
		}
	}
	mu.Unlock()
	if log.Stats().Dropped == 0 {
		t.Fatalf("the log made no room: %+v", log.Stats())
	}
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &dcsync.Request{Key: "k", Op: "set"}); err != nil {
		t.Fatalf("the log made no room once its writes were delivered: %v", err)
	}
}

// failingLog is an AuditLog whose Append always fails.
type failingLog struct{ dcsync.AuditLog }

func (failingLog) Append(context.Context, []dcsync.Entry) error { return errors.New("disk gone") }

// Records a log fails to take are counted in Stats.AuditDropped, and the
// queue is empty once flushed.
func TestAuditStatsCountDroppedRecords(t *testing.T) {
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: noop, Audit: failingLog{memaudit.New(0)},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 10 {
		if err := s.Write(context.Background(), &dcsync.Request{Key: "k", Op: "set"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.AuditDropped < 10 || st.AuditQueued != 0 {
		t.Fatalf("dropped %d (want at least the 10 process records), queued %d", st.AuditDropped, st.AuditQueued)
	}
}

// slowLog is a memory log whose Append waits until gate is closed.
type slowLog struct {
	*memaudit.Log
	gate chan struct{}
}

func (l slowLog) Append(ctx context.Context, entries []dcsync.Entry) error {
	<-l.gate
	return l.Log.Append(ctx, entries)
}

// A Write whose audit queue stays full, because the log does not take
// records, fails with ErrAuditBusy when its context ends, before the write
// is applied anywhere; the writes it took are all logged once the log
// takes records again.
func TestWriteHonoursContextWhenTheAuditQueueIsFull(t *testing.T) {
	log := slowLog{Log: memaudit.New(0), gate: make(chan struct{})}
	st := newStore(0, 1)
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": &recordingSender{}},
		Processor: st, Audit: log, AuditQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	var taken []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		req := &dcsync.Request{Key: "k", Op: "set"}
		err := s.Write(ctx, req)
		cancel()
		if err == nil {
			taken = append(taken, req.ID)
			continue
		}
		if !errors.Is(err, dcsync.ErrAuditBusy) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want ErrAuditBusy and the deadline", err)
		}
		st.mu.Lock()
		n := st.applies[req.ID]
		st.mu.Unlock()
		if n != 0 {
			t.Fatalf("the write refused with %v was applied", err)
		}
		break
	}
	close(log.gate)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ids, err := log.IDs(context.Background(), dcsync.SetQuery{Origin: "unicom", DC: "unicom", Stage: dcsync.StageProcess,
		From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	slices.Sort(taken)
	if !slices.Equal(ids, taken) {
		t.Fatalf("logged %d process records, want the %d writes taken", len(ids), len(taken))
	}
}
