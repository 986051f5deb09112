package dcsync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/hop"
)

// A peer sending a version of 2^64-1, or one dated a year ahead, is refused
// by default on every path that observes versions — the Collector and
// the apply hop (package hop) — counted, and leaves the clock where it was: later local
// writes still win over what was there.
func TestVersionsAheadRefused(t *testing.T) {
	st := newStore(0, 1)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	ctx := context.Background()
	ahead := uint64(time.Now().Add(365*24*time.Hour).UnixMilli()) << 16
	for i, v := range []uint64{1<<64 - 1, ahead} {
		id := []string{"max", "year"}[i]
		err := s.Collector().Collect(ctx, "telecom", []*dcsync.Request{stamped("telecom", "c-"+id, v)})
		if err == nil {
			t.Fatalf("collect of version %d accepted", v)
		}
		if errs := hop.Of(s).Apply(ctx, []*dcsync.Request{stamped("telecom", "a-"+id, v)}); errs[0] == nil {
			t.Fatalf("apply of version %d accepted", v)
		}
	}
	var be *dcsync.BatchError
	err := s.Collector().Collect(ctx, "telecom", []*dcsync.Request{stamped("telecom", "c-2", ahead)})
	if !errors.As(err, &be) || !errors.Is(be.Errs[0], dcsync.ErrClockSkew) || dcsync.IsPermanent(be.Errs[0]) {
		t.Fatalf("ahead: %v, want a retryable ErrClockSkew", err)
	}
	err = s.Collector().Collect(ctx, "telecom", []*dcsync.Request{stamped("telecom", "c-3", 1<<64-1)})
	if !errors.As(err, &be) || !errors.Is(be.Errs[0], dcsync.ErrInvalid) {
		t.Fatalf("2^64-1: %v, want ErrInvalid", err)
	}
	if len(st.applies) != 0 {
		t.Fatalf("applied %v", st.applies)
	}
	if got := s.Stats(); got.Skewed != 3 || got.Invalid < 3 {
		t.Fatalf("stats %+v, want 3 skewed and 3 invalid", got)
	}
	w := &dcsync.Request{Key: "k"}
	if err := s.Write(ctx, w); err != nil {
		t.Fatal(err)
	}
	if w.Version >= ahead || time.Until(w.Time()) > time.Minute {
		t.Fatalf("a local write after the refusals has version %d (%v)", w.Version, w.Time())
	}
	// A version within the default MaxSkew is accepted.
	near := uint64(time.Now().Add(10*time.Second).UnixMilli()) << 16
	if err := s.Collector().Collect(ctx, "telecom", []*dcsync.Request{stamped("telecom", "near", near)}); err != nil {
		t.Fatal(err)
	}
}
