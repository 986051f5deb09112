package dcsync_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/hlc"
	"github.com/dcsync/dcsync/journal"
)

func openJournal(t *testing.T, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func journaledSyncer(t *testing.T, p dcsync.Processor, peer dcsync.Sender, j dcsync.Journal) *dcsync.Syncer {
	t.Helper()
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": peer}, Processor: p,
		Journal: j, Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A write acknowledged while its peer was down is shipped when the Syncer
// starts again over the same journal, and is not applied twice.
func TestJournalShipsAfterRestartWhatNoPeerAcknowledged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := newStore(0, 1)
	down := &recordingSender{send: func([]*dcsync.Request) error { return errors.New("peer unreachable") }}
	j := openJournal(t, dir)
	s := journaledSyncer(t, st, down, j)
	const n = 50
	for i := range n {
		if err := s.Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Peers["telecom"].Backlog; got != n {
		t.Fatalf("backlog %d, want %d", got, n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	up := &recordingSender{}
	j = openJournal(t, dir)
	defer j.Close()
	s = journaledSyncer(t, st, up, j)
	rec, err := s.WaitRecovered(ctx)
	if err != nil || rec.Pending != n || rec.Reshipped != n || rec.Applied != 0 {
		t.Fatalf("recovery %+v, %v", rec, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(up.delivered()); got != n {
		t.Fatalf("peer got %d writes, want %d", got, n)
	}
	for id, k := range st.applies {
		if k != 1 {
			t.Fatalf("%s applied %d times", id, k)
		}
	}
	if got := s.Stats().Peers["telecom"].Backlog; got != 0 {
		t.Fatalf("backlog %d after delivery", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A write that reached the journal but not the Processor, as when the
// process dies between the two, is applied and shipped on start.
func TestJournalAppliesWhatACrashLeftUnapplied(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openJournal(t, dir)
	if _, err := j.Recover([]string{"telecom"}); err != nil {
		t.Fatal(err)
	}
	w := &dcsync.Request{ID: "0190f5f0-0000-7000-8000-000000000001", Origin: "unicom", Key: "k", Op: "set",
		Version: hlc.FromTime(time.Now())}
	if err := j.Append(w); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	st, peer := newStore(0, 1), &recordingSender{}
	j = openJournal(t, dir)
	defer j.Close()
	s := journaledSyncer(t, st, peer, j)
	defer s.Close()
	rec, err := s.WaitRecovered(ctx)
	if err != nil || rec.Applied != 1 || rec.Reshipped != 1 {
		t.Fatalf("recovery %+v, %v", rec, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st.applies[w.ID] != 1 || peer.delivered()[w.ID] != 1 {
		t.Fatalf("applied %d, delivered %d", st.applies[w.ID], peer.delivered()[w.ID])
	}
	// A write made after it orders after it.
	next := &dcsync.Request{Key: "k"}
	if err := s.Write(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next.Version <= w.Version {
		t.Fatalf("new write's version %d not after the recovered %d", next.Version, w.Version)
	}
}

// A rejected write stays rejected: it is neither shipped nor applied on
// recovery, and its error says it was applied nowhere.
func TestJournalKeepsRejectedWritesRejected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fail := true
	p := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error {
		if fail {
			return errors.New("database down")
		}
		return nil
	})
	j := openJournal(t, dir)
	peer := &recordingSender{}
	s := journaledSyncer(t, p, peer, j)
	err := s.Write(ctx, &dcsync.Request{Key: "k"})
	if err == nil || errors.Is(err, dcsync.ErrNotReplicated) {
		t.Fatalf("got %v, want a rejection that is not ErrNotReplicated", err)
	}
	s.Close()
	j.Close()
	fail = false
	j = openJournal(t, dir)
	defer j.Close()
	s = journaledSyncer(t, p, peer, j)
	defer s.Close()
	if rec, err := s.WaitRecovered(ctx); err != nil || rec.Pending != 0 {
		t.Fatalf("recovery %+v, %v", rec, err)
	}
	if got := len(peer.delivered()); got != 0 {
		t.Fatalf("rejected write shipped %d times", got)
	}
}

// A panicking Processor fails the write, at the origin and at a peer, and
// leaves no dedupe claim behind: a redelivery applies it.
func TestProcessorPanicIsAFailedStage(t *testing.T) {
	ctx := context.Background()
	var panics atomic.Int32
	panics.Store(1)
	p := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error {
		if panics.Add(-1) >= 0 {
			panic("nil map")
		}
		return nil
	})
	s := newSyncer(t, p, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	err := s.Write(ctx, &dcsync.Request{Key: "k"})
	if !errors.Is(err, dcsync.ErrPanic) || errors.Is(err, dcsync.ErrNotReplicated) {
		t.Fatalf("got %v, want ErrPanic", err)
	}
	if st := s.Stats(); st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}

	panics.Store(1)
	w := &dcsync.Request{ID: "0190f5f0-0000-7000-8000-000000000002", Origin: "telecom", Key: "k", Op: "set",
		Version: hlc.FromTime(time.Now())}
	err = s.Collector().Collect(ctx, "telecom", []*dcsync.Request{w})
	if !errors.Is(err, dcsync.ErrPanic) {
		t.Fatalf("first delivery: got %v, want ErrPanic", err)
	}
	if err := s.Collector().Collect(ctx, "telecom", []*dcsync.Request{w}); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
}

// blackhole is a peer that never answers: Send returns when its context
// ends.
type blackhole struct{}

func (blackhole) Send(ctx context.Context, _ []*dcsync.Request) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blackhole) Close() error { return nil }

// A WaitAll against a peer that hangs fails when the caller's context
// ends, saying the write was applied here and not acknowledged.
func TestWaitAllAgainstAHangingPeer(t *testing.T) {
	s := newSyncer(t, newStore(0, 1), map[string]dcsync.Sender{"telecom": blackhole{}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, &dcsync.Request{Key: "k"}, dcsync.WaitAll())
	if !errors.Is(err, dcsync.ErrNotReplicated) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrNotReplicated and the deadline", err)
	}
	done, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	var ue *dcsync.UndeliveredError
	if err := s.Shutdown(done); !errors.As(err, &ue) || ue.Deliveries != 1 {
		t.Fatalf("shutdown: %v, want one delivery left", err)
	}
}

// Shutdown with a black-holed peer returns when its context ends, says how
// many deliveries it left, and the journal keeps them.
func TestShutdownIsBoundedAndLeavesTheRestToTheJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openJournal(t, dir)
	defer j.Close()
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": blackhole{}},
		Processor: newStore(0, 1), Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if err := s.Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
	}
	done, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	defer stop()
	var ue *dcsync.UndeliveredError
	if err := s.Shutdown(done); !errors.As(err, &ue) || ue.Deliveries != n || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v, want %d deliveries left", err, n)
	}
	if err := s.Write(ctx, &dcsync.Request{Key: "late"}); !errors.Is(err, dcsync.ErrClosed) {
		t.Fatalf("write after shutdown: %v", err)
	}
	if got := s.Stats().Peers["telecom"].Backlog; got != n {
		t.Fatalf("journal backlog %d, want %d", got, n)
	}
}

// reshipFunc is a Reship of the caller's, as the MQ wiring's outbound
// stream is.
type reshipFunc func(ctx context.Context, req *dcsync.Request) error

func (f reshipFunc) Reship(ctx context.Context, req *dcsync.Request) error { return f(ctx, req) }

// With a Reship of the caller's, a write is done in the journal once that
// Reship took it; one it refused stays, and is handed to it again on start.
func TestJournalWithACallersReship(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	refuse := true
	var took []string
	reship := reshipFunc(func(_ context.Context, req *dcsync.Request) error {
		if refuse {
			return errors.New("stream unavailable")
		}
		took = append(took, req.ID)
		return nil
	})
	cfg := dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": &recordingSender{}},
		Processor: newStore(0, 1), Reship: reship}
	cfg.Journal = openJournal(t, dir)
	s, err := dcsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	refused := &dcsync.Request{Key: "a"}
	if err := s.Write(ctx, refused); !errors.Is(err, dcsync.ErrNotReplicated) {
		t.Fatalf("got %v, want ErrNotReplicated: applied here, not queued", err)
	}
	refuse = false
	if err := s.Write(ctx, &dcsync.Request{Key: "b"}); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Peers["telecom"].Backlog; got != 1 {
		t.Fatalf("backlog %d, want the refused write only", got)
	}
	s.Close()
	cfg.Journal.(*journal.Journal).Close()

	took = nil
	cfg.Journal = openJournal(t, dir)
	defer cfg.Journal.(*journal.Journal).Close()
	if s, err = dcsync.New(cfg); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rec, err := s.WaitRecovered(ctx); err != nil || rec.Reshipped != 1 || rec.Applied != 0 {
		t.Fatalf("recovery %+v, %v", rec, err)
	}
	if len(took) != 1 || took[0] != refused.ID {
		t.Fatalf("reshipped %v, want %s", took, refused.ID)
	}
}

// A Write whose peer queue stays full returns when its context ends, and
// says the write was applied here.
func TestWriteHonoursContextWhenTheQueueIsFull(t *testing.T) {
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": blackhole{}},
		Processor: newStore(0, 1), Delivery: dcsync.Delivery{QueueSize: 1, Workers: 1, BatchSize: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The black hole keeps its deliveries: Shutdown gives up on them when
	// ctx ends.
	defer func() { _ = s.Shutdown(ctx) }()
	for {
		err := s.Write(ctx, &dcsync.Request{Key: "k"})
		if err == nil {
			continue
		}
		if !errors.Is(err, dcsync.ErrNotReplicated) || !errors.Is(err, dcsync.ErrQueueFull) {
			t.Fatalf("got %v, want ErrNotReplicated and ErrQueueFull", err)
		}
		return
	}
}

// Writes the sender gave up on while the peer was down are queued again by
// Redrive from the journal, with no restart and no reconciler.
func TestJournalRedrivesWhatThePeerMissed(t *testing.T) {
	ctx := context.Background()
	var down atomic.Bool
	down.Store(true)
	peer := &recordingSender{send: func([]*dcsync.Request) error {
		if down.Load() {
			return errors.New("peer unreachable")
		}
		return nil
	}}
	j := openJournal(t, t.TempDir())
	defer j.Close()
	s := journaledSyncer(t, newStore(0, 1), peer, j)
	defer s.Close()
	const n = 30
	for i := range n {
		if err := s.Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats().Peers["telecom"]; st.Backlog != n || st.Oldest <= 0 {
		t.Fatalf("peer status %+v, want %d stranded", st, n)
	}
	down.Store(false)
	if got, err := s.Redrive(ctx, 0); err != nil || got != n {
		t.Fatalf("redrive queued %d, %v; want %d", got, err, n)
	}
	// The queue may still hold the peer down for up to Backoff.Max, and
	// fail some again: redrive until it has taken them all.
	deadline := time.Now().Add(time.Minute)
	for {
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		st := s.Stats().Peers["telecom"]
		if st.Backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer status %+v after redrives", st)
		}
		time.Sleep(10 * time.Millisecond)
		if _, err := s.Redrive(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// Shutdown returns when its context ends even while a Processor call
// outlives it; the Syncer finishes closing once the call returns.
func TestShutdownWithAHangingProcessor(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	p := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error {
		close(entered)
		<-release
		return nil
	})
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": &recordingSender{}}, Processor: p})
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() { written <- s.Write(context.Background(), &dcsync.Request{Key: "k"}) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v, want the deadline", err)
	}
	close(release)
	if err := <-written; err != nil && !errors.Is(err, dcsync.ErrNotReplicated) {
		t.Fatalf("write under way: %v, want nil or ErrNotReplicated", err)
	}
	if err := s.Write(context.Background(), &dcsync.Request{Key: "k"}); !errors.Is(err, dcsync.ErrClosed) {
		t.Fatalf("write after shutdown: %v", err)
	}
}
