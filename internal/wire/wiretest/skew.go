package wiretest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/wire"
)

// TestSkewRefusal checks that a receiver whose clock is an hour behind
// refuses a write with CODE_CLOCK_SKEW, which the sender of tr returns as
// a retryable dcsync.ErrClockSkew (errors.Is, not the message), and which
// a Reconciler's pass counts in Report.SkewRefused.
func TestSkewRefusal(t *testing.T, tr Transport) {
	behind := func() time.Time { return time.Now().Add(-time.Hour) }
	store := NewStore()
	receiver, err := dcsync.New(dcsync.Config{DC: "telecom", Peers: map[string]dcsync.Sender{"unicom": nopSender{}},
		Processor: store, Now: behind})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = receiver.Close() })
	ln := Listen(t)
	tr.Serve(t, ln, receiver.Collector(), Secrets())
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	reqs, _ := Batch(t, 1)
	err = tr.Sender(t, addr, "unicom", Secret, false).Send(ctx, reqs)
	var be *dcsync.BatchError
	var re *wire.RemoteError
	if !errors.As(err, &be) || !errors.Is(be.Errs[0], dcsync.ErrClockSkew) || dcsync.IsPermanent(be.Errs[0]) ||
		!errors.As(be.Errs[0], &re) || re.Code != wire.Code_CODE_CLOCK_SKEW {
		t.Fatalf("send to a receiver an hour behind: %v, want a retryable ErrClockSkew of CODE_CLOCK_SKEW", err)
	}

	audit := memaudit.New(0)
	peer := tr.Sender(t, addr, "unicom", Secret, false)
	origin, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": peer},
		Processor: NewStore(), Audit: audit,
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = origin.Close() })
	for range 3 {
		if err := origin.Write(ctx, &dcsync.Request{Key: "k", Op: "set"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := origin.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: audit,
		Peers: map[string]dcsync.Sender{"telecom": peer}, Grace: -1,
		Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SkewRefused != 3 || rep.Failing != 3 {
		t.Fatalf("report %+v, want 3 writes refused for skew", rep)
	}
	if n := store.Count(); n != 0 {
		t.Fatalf("the receiver applied %d writes", n)
	}
}
