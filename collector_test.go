package dcsync_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/hop"
)

// stamped returns a write as it arrives from origin.
func stamped(origin, id string, version uint64) *dcsync.Request {
	return &dcsync.Request{ID: id, Origin: origin, Key: "k", Version: version}
}

func TestCollectRejectsWholeBatches(t *testing.T) {
	st := newStore(0, 1)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	c := s.Collector()
	ok := stamped("telecom", "w1", 1<<20)
	big := make([]*dcsync.Request, dcsync.DefaultMaxBatch+1)
	for i := range big {
		big[i] = ok
	}
	for name, tc := range map[string]struct {
		from string
		reqs []*dcsync.Request
		want error
	}{
		"unknown peer":   {"mobile", []*dcsync.Request{stamped("mobile", "w2", 1<<20)}, dcsync.ErrUnknownPeer},
		"self":           {"unicom", []*dcsync.Request{stamped("unicom", "w2", 1<<20)}, dcsync.ErrUnknownPeer},
		"forged origin":  {"telecom", []*dcsync.Request{ok, stamped("mobile", "w3", 1<<20)}, dcsync.ErrForgedOrigin},
		"nil request":    {"telecom", []*dcsync.Request{ok, nil}, dcsync.ErrNilRequest},
		"batch too long": {"telecom", big, dcsync.ErrBatchTooLarge},
	} {
		err := c.Collect(context.Background(), tc.from, tc.reqs)
		if !errors.Is(err, tc.want) || !dcsync.IsPermanent(err) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	if len(st.applies) != 0 {
		t.Fatalf("a rejected batch was applied: %v", st.applies)
	}
	if s.Stats().Invalid != 5 {
		t.Fatalf("stats: %+v", s.Stats())
	}
}

func TestCollectFailsOnlyTheBadRequests(t *testing.T) {
	st, log := newStore(0, 1), memaudit.New(0)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": &recordingSender{}}, log)
	reqs := []*dcsync.Request{
		stamped("telecom", "good-1", 1<<20),
		stamped("telecom", "bad id", 1<<20),
		stamped("telecom", "no-version", 0),
		stamped("telecom", "good-2", 1<<20),
	}
	reqs[3].Key = ""
	reqs = append(reqs, stamped("telecom", "good-3", 1<<20))
	err := s.Collector().Collect(context.Background(), "telecom", reqs)
	var be *dcsync.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(reqs) {
		t.Fatalf("got %v, want a BatchError of %d", err, len(reqs))
	}
	want := []error{nil, dcsync.ErrInvalidID, dcsync.ErrNoVersion, dcsync.ErrEmptyKey, nil}
	for i, w := range want {
		if (w == nil) != (be.Errs[i] == nil) || (w != nil && !errors.Is(be.Errs[i], w)) {
			t.Errorf("request %d: got %v, want %v", i, be.Errs[i], w)
		}
	}
	if st.applies["good-1"] != 1 || st.applies["good-3"] != 1 || len(st.applies) != 2 {
		t.Fatalf("applied: %v", st.applies)
	}
	s.Flush(context.Background())
	if recs := log.Records("no-version"); len(recs) != 1 || recs[0].Status != dcsync.StatusFailed {
		t.Fatalf("rejected request's trail: %+v", recs)
	}
}

func TestCollectAppliesEachWriteOnce(t *testing.T) {
	st := newStore(0, 1)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	batch := []*dcsync.Request{stamped("telecom", "a", 1<<20), stamped("telecom", "b", 2<<20)}
	for range 3 {
		if err := s.Collector().Collect(context.Background(), "telecom", batch); err != nil {
			t.Fatal(err)
		}
	}
	if st.applies["a"] != 1 || st.applies["b"] != 1 {
		t.Fatalf("applies: %v", st.applies)
	}
	if got := s.Stats(); got.Duplicates != 4 || got.Applied != 2 {
		t.Fatalf("stats: %+v", got)
	}
}

func TestCollectRetriesAFailedApply(t *testing.T) {
	st := newStore(1, 1)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	batch := []*dcsync.Request{stamped("telecom", "a", 1<<20)}
	err := s.Collector().Collect(context.Background(), "telecom", batch)
	if !errors.Is(err, errFlaky) || dcsync.IsPermanent(err) {
		t.Fatalf("got %v, want the retryable processor error", err)
	}
	st.setFailRate(0)
	if err := s.Collector().Collect(context.Background(), "telecom", batch); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if st.applies["a"] != 1 {
		t.Fatalf("applies: %v", st.applies)
	}
}

// The collect hop hands accepted writes to the next hop, once, and the
// apply hop applies them.
func TestCollectHandsOff(t *testing.T) {
	st, queued := newStore(0, 1), newStore(0, 2)
	s := newSyncer(t, st, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	next := func(ctx context.Context, reqs []*dcsync.Request) []error {
		for _, r := range reqs {
			queued.Process(ctx, r)
		}
		return nil
	}
	req := stamped("telecom", "a", 1<<20)
	stages := hop.Of(s)
	for range 2 {
		if err := hop.Err(stages.Collect(context.Background(), "telecom", []*dcsync.Request{req}, nil, next)); err != nil {
			t.Fatal(err)
		}
	}
	if queued.applies["a"] != 1 || len(st.applies) != 0 {
		t.Fatalf("handoff %v, processor %v", queued.applies, st.applies)
	}
	if errs := stages.Apply(context.Background(), []*dcsync.Request{req}); errs[0] != nil || st.applies["a"] != 1 {
		t.Fatalf("Apply: %v, %v", errs, st.applies)
	}
	if errs := stages.Apply(context.Background(), []*dcsync.Request{stamped("telecom", "", 1)}); !errors.Is(errs[0], dcsync.ErrInvalidID) {
		t.Fatalf("Apply of an invalid write: %v", errs)
	}
}

func TestCollectAfterClose(t *testing.T) {
	s := newSyncer(t, newStore(0, 1), map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	s.Close()
	err := s.Collector().Collect(context.Background(), "telecom", []*dcsync.Request{stamped("telecom", "a", 1<<20)})
	if !errors.Is(err, dcsync.ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestMemoryDedupe(t *testing.T) {
	ctx := context.Background()
	var d dcsync.MemoryDedupe
	steps := []struct {
		do   string
		want dcsync.Claim
	}{
		{"claim", dcsync.Claimed}, {"claim", dcsync.InFlight}, {"release", 0},
		{"claim", dcsync.Claimed}, {"commit", 0}, {"claim", dcsync.Applied},
	}
	for i, st := range steps {
		switch st.do {
		case "claim":
			if got, _ := d.Claim(ctx, "x"); got != st.want {
				t.Fatalf("step %d: claim = %v, want %v", i, got, st.want)
			}
		case "release":
			d.Release(ctx, "x")
		case "commit":
			d.Commit(ctx, "x")
		}
	}
}

// ClaimBatch answers each ID as Claim would, one after the other: a
// duplicate within the batch is in flight, and IDs of every shard keep
// their answers' order; CommitBatch commits as Commit does.
func TestMemoryDedupeBatch(t *testing.T) {
	ctx := context.Background()
	var d dcsync.MemoryDedupe
	ids := make([]string, 0, 1001)
	for i := range 1000 {
		ids = append(ids, fmt.Sprint("w", i))
	}
	ids = append(ids, "w7") // twice in one batch
	claims := make([]dcsync.Claim, len(ids))
	if err := d.ClaimBatch(ctx, ids, claims); err != nil {
		t.Fatal(err)
	}
	for i, c := range claims {
		if want := map[bool]dcsync.Claim{true: dcsync.InFlight, false: dcsync.Claimed}[i == 1000]; c != want {
			t.Fatalf("%s: claim = %v, want %v", ids[i], c, want)
		}
	}
	if err := d.CommitBatch(ctx, ids[:500]); err != nil {
		t.Fatal(err)
	}
	d.Release(ctx, "w999")
	again := []string{"w0", "w499", "w500", "w999", "new"}
	want := []dcsync.Claim{dcsync.Applied, dcsync.Applied, dcsync.InFlight, dcsync.Claimed, dcsync.Claimed}
	claims = claims[:len(again)]
	if err := d.ClaimBatch(ctx, again, claims); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(claims, want) {
		t.Fatalf("claims %v, want %v", claims, want)
	}
	if c, _ := d.Claim(ctx, "w1"); c != dcsync.Applied {
		t.Fatalf("Claim after CommitBatch = %v", c)
	}
}

// countingDedupe counts the calls a Collector makes to its store.
type countingDedupe struct {
	dcsync.MemoryDedupe
	claims, claimBatches, commits, commitBatches int
}

func (c *countingDedupe) Claim(ctx context.Context, id string) (dcsync.Claim, error) {
	c.claims++
	return c.MemoryDedupe.Claim(ctx, id)
}

func (c *countingDedupe) ClaimBatch(ctx context.Context, ids []string, claims []dcsync.Claim) error {
	c.claimBatches++
	return c.MemoryDedupe.ClaimBatch(ctx, ids, claims)
}

func (c *countingDedupe) Commit(ctx context.Context, id string) error {
	c.commits++
	return c.MemoryDedupe.Commit(ctx, id)
}

func (c *countingDedupe) CommitBatch(ctx context.Context, ids []string) error {
	c.commitBatches++
	return c.MemoryDedupe.CommitBatch(ctx, ids)
}

// The Collector claims and commits a batch's IDs in one call each when
// its store is a BatchDedupeStore, and gets the same answers: a write
// applied before is a duplicate.
func TestCollectClaimsBatchesWhole(t *testing.T) {
	st, d := newStore(0, 1), &countingDedupe{}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: st, Dedupe: d,
		Peers: map[string]dcsync.Sender{"telecom": &recordingSender{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := func(ids ...string) []*dcsync.Request {
		var reqs []*dcsync.Request
		for _, id := range ids {
			reqs = append(reqs, stamped("telecom", id, 1<<20))
		}
		return reqs
	}
	ctx := context.Background()
	if err := s.Collector().Collect(ctx, "telecom", batch("w1", "w2", "w3")); err != nil {
		t.Fatal(err)
	}
	if err := s.Collector().Collect(ctx, "telecom", batch("w2", "w4", "w5")); err != nil {
		t.Fatal(err)
	}
	if d.claimBatches != 2 || d.commitBatches != 2 || d.claims != 0 || d.commits != 0 {
		t.Fatalf("calls: Claim %d, ClaimBatch %d, Commit %d, CommitBatch %d", d.claims, d.claimBatches, d.commits, d.commitBatches)
	}
	if got := s.Stats(); got.Applied != 5 || got.Duplicates != 1 {
		t.Fatalf("applied %d, duplicates %d; want 5 and 1", got.Applied, got.Duplicates)
	}
}

func TestMemoryDedupeForgetsAfterRetention(t *testing.T) {
	ctx := context.Background()
	d := dcsync.MemoryDedupe{Retention: 5 * time.Millisecond}
	d.Claim(ctx, "x")
	d.Commit(ctx, "x")
	if c, _ := d.Claim(ctx, "x"); c != dcsync.Applied {
		t.Fatalf("claim right after commit = %v", c)
	}
	time.Sleep(6 * time.Millisecond)
	if c, _ := d.Claim(ctx, "y"); c != dcsync.Claimed { // rotates: x is now in the older generation
		t.Fatalf("claim of a new ID = %v", c)
	}
	if c, _ := d.Claim(ctx, "x"); c != dcsync.Applied {
		t.Fatal("forgot x after one retention period; it must be kept for at least one")
	}
	time.Sleep(6 * time.Millisecond)
	d.Claim(ctx, "z") // rotates again: the generation holding x is dropped
	if c, _ := d.Claim(ctx, "x"); c != dcsync.Claimed {
		t.Fatalf("x still remembered after two retention periods: %v", c)
	}
}

// A claim neither committed nor released — its apply panicked, or the
// process died — expires after ClaimTTL, and the write may be claimed
// again; one committed stays applied.
func TestMemoryDedupeClaimsExpire(t *testing.T) {
	ctx := context.Background()
	const ttl = 2 * time.Second // a claim outlives any stall of a loaded machine between two calls
	d := dcsync.MemoryDedupe{ClaimTTL: ttl}
	d.Claim(ctx, "crashed")
	d.Claim(ctx, "done")
	d.Commit(ctx, "done")
	if c, _ := d.Claim(ctx, "crashed"); c != dcsync.InFlight {
		t.Fatalf("a live claim is not in flight: %v", c)
	}
	time.Sleep(ttl + 100*time.Millisecond) // past the claim's deadline
	if c, _ := d.Claim(ctx, "crashed"); c != dcsync.Claimed {
		t.Fatalf("an abandoned claim did not expire: %v", c)
	}
	if c, _ := d.Claim(ctx, "done"); c != dcsync.Applied {
		t.Fatalf("a committed write expired: %v", c)
	}
}

// MaxEntries bounds what is remembered, whatever the history.
func TestMemoryDedupeIsBounded(t *testing.T) {
	ctx := context.Background()
	d := dcsync.MemoryDedupe{MaxEntries: 1 << 10}
	for i := range 1 << 14 {
		id := fmt.Sprint("w", i)
		d.Claim(ctx, id)
		d.Commit(ctx, id)
	}
	if c, _ := d.Claim(ctx, "w0"); c != dcsync.Claimed {
		t.Fatalf("the oldest of 16x MaxEntries IDs is still remembered: %v", c)
	}
	if c, _ := d.Claim(ctx, fmt.Sprint("w", 1<<14-1)); c != dcsync.Applied {
		t.Fatalf("the newest ID is forgotten: %v", c)
	}
}

// batchStore counts how its writes arrive.
type batchStore struct {
	*store
	batches int
}

func (b *batchStore) ProcessBatch(ctx context.Context, reqs []*dcsync.Request) error {
	b.batches++
	errs := make([]error, len(reqs))
	failed := false
	for i, r := range reqs {
		if r.Key == "fail" {
			errs[i], failed = errFlaky, true
			continue
		}
		errs[i] = b.Process(ctx, r)
	}
	if failed {
		return &dcsync.BatchError{Errs: errs}
	}
	return nil
}

func TestCollectUsesBatchProcessor(t *testing.T) {
	bs := &batchStore{store: newStore(0, 1)}
	s := newSyncer(t, bs, map[string]dcsync.Sender{"telecom": &recordingSender{}}, nil)
	batch := []*dcsync.Request{stamped("telecom", "a", 1<<20), stamped("telecom", "b", 1<<20), stamped("telecom", "c", 1<<20)}
	batch[1].Key = "fail"
	err := s.Collector().Collect(context.Background(), "telecom", batch)
	var be *dcsync.BatchError
	if !errors.As(err, &be) || be.Errs[0] != nil || !errors.Is(be.Errs[1], errFlaky) || be.Errs[2] != nil {
		t.Fatalf("got %v", err)
	}
	if bs.batches != 1 || bs.applies["a"] != 1 || bs.applies["c"] != 1 {
		t.Fatalf("%d batch calls, applies %v", bs.batches, bs.applies)
	}
	batch[1].Key = "k" // the failed one was released: a retry applies it
	if err := s.Collector().Collect(context.Background(), "telecom", batch); err != nil || bs.applies["b"] != 1 || bs.applies["a"] != 1 {
		t.Fatalf("retry: %v, applies %v", err, bs.applies)
	}
}

func TestMaxSkewRefusesVersionsFromTheFuture(t *testing.T) {
	st := newStore(0, 1)
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: st, MaxSkew: time.Second,
		Peers: map[string]dcsync.Sender{"telecom": &recordingSender{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ahead := stamped("telecom", "ahead", uint64(time.Now().Add(time.Hour).UnixMilli())<<16)
	err = s.Collector().Collect(context.Background(), "telecom", []*dcsync.Request{ahead})
	if !errors.Is(err, dcsync.ErrClockSkew) || dcsync.IsPermanent(err) || len(st.applies) != 0 {
		t.Fatalf("got %v (applies %v), want a retryable ErrClockSkew", err, st.applies)
	}
	near := stamped("telecom", "near", uint64(time.Now().Add(500*time.Millisecond).UnixMilli())<<16)
	if err := s.Collector().Collect(context.Background(), "telecom", []*dcsync.Request{near}); err != nil {
		t.Fatal(err)
	}
	local := &dcsync.Request{Key: "k"}
	s.Write(context.Background(), local)
	if local.Version <= near.Version {
		t.Fatal("a local write after collecting did not order after it")
	}
}

func TestObserveOrdersLaterWritesAfterWhatWasRead(t *testing.T) {
	s := newSyncer(t, newStore(0, 1), nil, nil)
	read := uint64(time.Now().Add(time.Minute).UnixMilli()) << 16 // written by a peer whose clock is ahead
	s.Observe(read)
	req := &dcsync.Request{Key: "k"}
	s.Write(context.Background(), req)
	if req.Version <= read {
		t.Fatalf("version %d does not order after the observed %d", req.Version, read)
	}
}

func TestApplyHop(t *testing.T) {
	bs := &batchStore{store: newStore(0, 1)}
	s := newSyncer(t, bs, nil, nil)
	batch := []*dcsync.Request{stamped("telecom", "a", 1<<20), stamped("telecom", "bad id", 1<<20), stamped("telecom", "c", 1<<20)}
	errs := hop.Of(s).Apply(context.Background(), batch)
	if errs[0] != nil || !errors.Is(errs[1], dcsync.ErrInvalidID) || errs[2] != nil {
		t.Fatalf("got %v", errs)
	}
	if bs.batches != 1 || bs.applies["a"] != 1 || bs.applies["c"] != 1 || s.Stats().Applied != 2 {
		t.Fatalf("%d batch calls, applies %v, stats %+v", bs.batches, bs.applies, s.Stats())
	}
}
