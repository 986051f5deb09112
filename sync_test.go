package dcsync_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
)

func newSyncer(t *testing.T, p dcsync.Processor, peers map[string]dcsync.Sender, audit dcsync.AuditLog) *dcsync.Syncer {
	t.Helper()
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: peers, Processor: p, Audit: audit,
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestWriteIDsAreUnique(t *testing.T) {
	s := newSyncer(t, dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil }), nil, nil)
	const writers, each = 8, 5000
	ids := make(chan string, writers*each)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				req := &dcsync.Request{Key: "k"}
				if err := s.Write(context.Background(), req); err != nil {
					t.Error(err)
					return
				}
				ids <- req.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("ID %s assigned twice", id)
		}
		seen[id] = true
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	p := newStore(0, 1)
	for name, cfg := range map[string]dcsync.Config{
		"no dc":        {Processor: p},
		"bad dc":       {DC: "a b", Processor: p},
		"no processor": {DC: "a"},
		"self peer":    {DC: "a", Processor: p, Peers: map[string]dcsync.Sender{"a": &recordingSender{}}},
		"nil sender":   {DC: "a", Processor: p, Peers: map[string]dcsync.Sender{"b": nil}},
	} {
		if _, err := dcsync.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestWriteStampsAndShips(t *testing.T) {
	st, peer, log := newStore(0, 1), &recordingSender{}, memaudit.New(0)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": peer}, log)
	var last uint64
	for range 10 {
		req := &dcsync.Request{Key: "k", Op: "set", Payload: []byte("v")}
		if err := s.Write(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		id, err := uuid.Parse(req.ID)
		if err != nil || id.Version() != 7 || id.Variant() != uuid.RFC4122 {
			t.Fatalf("ID %q is not a UUIDv7: %v", req.ID, err)
		}
		if sec, nsec := id.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != req.Time().UnixMilli() {
			t.Fatalf("ID %q dates %v, its version %v", req.ID, time.Unix(sec, nsec), req.Time())
		}
		if req.Origin != "unicom" || req.Version <= last {
			t.Fatalf("origin %q version %d after %d", req.Origin, req.Version, last)
		}
		last = req.Version
	}
	given := &dcsync.Request{ID: "order-42", Key: "k"}
	if err := s.Write(context.Background(), given); err != nil || given.ID != "order-42" {
		t.Fatalf("Write with own ID: %v, ID %q", err, given.ID)
	}
	s.Close()
	if got := len(peer.delivered()); got != 11 {
		t.Fatalf("peer got %d writes, want 11", got)
	}
	if n := log.Counts()[memaudit.Tally{DC: "unicom", Stage: dcsync.StageReship, Status: dcsync.StatusOK}]; n != 11 {
		t.Fatalf("%d reship records, want 11", n)
	}
	// The trail comes in time order, and a packed entry is dated by its
	// first write (dcsync.Entry.Time): the reship entry that order-42 joined
	// may be dated before its process record. So find each by its stage.
	recs := log.Records("order-42")
	i := slices.IndexFunc(recs, func(r dcsync.Record) bool { return r.Stage == dcsync.StageProcess })
	j := slices.IndexFunc(recs, func(r dcsync.Record) bool { return r.Stage == dcsync.StageReship })
	if len(recs) != 2 || i < 0 || j < 0 || recs[i].Request == nil || recs[j].Target != "telecom" {
		t.Fatalf("trail of order-42: %+v", recs)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	st, peer := newStore(0, 1), &recordingSender{}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: st, Peers: map[string]dcsync.Sender{"telecom": peer},
		Limits: dcsync.Limits{MaxPayload: 8}})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		req  *dcsync.Request
		want error
	}{
		"nil":         {nil, dcsync.ErrNilRequest},
		"empty key":   {&dcsync.Request{}, dcsync.ErrEmptyKey},
		"big payload": {&dcsync.Request{Key: "k", Payload: make([]byte, 9)}, dcsync.ErrTooLarge},
		"bad id":      {&dcsync.Request{Key: "k", ID: "has space"}, dcsync.ErrInvalidID},
		"long id":     {&dcsync.Request{Key: "k", ID: strings.Repeat("a", 129)}, dcsync.ErrInvalidID},
		"big key":     {&dcsync.Request{Key: strings.Repeat("k", dcsync.DefaultMaxKey+1)}, dcsync.ErrTooLarge},
		"big header":  {&dcsync.Request{Key: "k", Header: map[string]string{"h": strings.Repeat("x", dcsync.DefaultMaxHeader)}}, dcsync.ErrTooLarge},
	} {
		err := s.Write(context.Background(), tc.req)
		if !errors.Is(err, tc.want) || !errors.Is(err, dcsync.ErrInvalid) || !dcsync.IsPermanent(err) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	s.Close()
	if len(st.applies) != 0 || len(peer.delivered()) != 0 {
		t.Fatalf("bad input was applied (%d) or shipped (%d)", len(st.applies), len(peer.delivered()))
	}
	if err := s.Write(context.Background(), &dcsync.Request{Key: "k"}); !errors.Is(err, dcsync.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestWriteWhoseProcessingFailsIsNotShipped(t *testing.T) {
	st, peer, log := newStore(1, 1), &recordingSender{}, memaudit.New(0)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": peer}, log)
	req := &dcsync.Request{Key: "k"}
	if err := s.Write(context.Background(), req); !errors.Is(err, errFlaky) {
		t.Fatalf("Write: %v, want the processor's error", err)
	}
	s.Close()
	if len(peer.delivered()) != 0 {
		t.Fatal("a write whose processing failed was shipped")
	}
	recs := log.Records(req.ID)
	if len(recs) != 1 || recs[0].Status != dcsync.StatusFailed || recs[0].Error == "" {
		t.Fatalf("trail: %+v", recs)
	}
	if st := s.Stats(); st.Rejected != 1 || st.Written != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestWaitAllAndQuorum(t *testing.T) {
	c := newCluster(t, 1, "a", "b", "c")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &dcsync.Request{Key: "k"}
	if err := c.sync["a"].Write(ctx, req, dcsync.WaitAll()); err != nil {
		t.Fatal(err)
	}
	for _, dc := range []string{"b", "c"} {
		if c.stores[dc].applies[req.ID] != 1 { // WaitAll returned: both applied
			t.Fatalf("%s has not applied %s when WaitAll returned", dc, req.ID)
		}
	}
	c.stores["c"].setFailRate(1)
	if err := c.sync["a"].Write(ctx, &dcsync.Request{Key: "k"}, dcsync.WaitQuorum(1)); err != nil {
		t.Fatalf("quorum of 1 with one peer up: %v", err)
	}
	if err := c.sync["a"].Write(ctx, &dcsync.Request{Key: "k"}, dcsync.WaitAll()); !errors.Is(err, dcsync.ErrNotReplicated) {
		t.Fatalf("WaitAll with one peer failing: %v, want ErrNotReplicated", err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	block := make(chan struct{})
	peer := &recordingSender{send: func([]*dcsync.Request) error { <-block; return nil }}
	s := newSyncer(t, newStore(0, 1), map[string]dcsync.Sender{"telecom": peer}, nil)
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Write(ctx, &dcsync.Request{Key: "k"}, dcsync.WaitAll()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

func TestThreeDatacenters(t *testing.T) {
	c := newCluster(t, 3, "unicom", "telecom", "mobile")
	written := map[string]bool{}
	for i := range 300 {
		dc := c.names[i%3]
		req := &dcsync.Request{Key: "k" + string(rune('a'+i%7)), Payload: []byte{byte(i)}}
		if err := c.sync[dc].Write(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		written[req.ID] = true
	}
	c.quiesce()
	c.checkConverged(written)
}
