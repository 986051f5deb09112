package hop_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/hop"
)

// processor records the IDs it applied.
type processor struct {
	mu      sync.Mutex
	applied []string
}

func (p *processor) Process(_ context.Context, req *dcsync.Request) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied = append(p.applied, req.ID)
	return nil
}

func (p *processor) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.applied)
}

// sender records the batches it was given.
type sender struct {
	mu   sync.Mutex
	sent [][]string
}

func (s *sender) Send(_ context.Context, reqs []*dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.ID)
	}
	s.sent = append(s.sent, ids)
	return nil
}

func (s *sender) Close() error { return nil }

// claims is a DedupeStore over another that records what was committed
// and released through it.
type claims struct {
	dcsync.DedupeStore
	committed, released []string
}

func (c *claims) Commit(ctx context.Context, id string) error {
	c.committed = append(c.committed, id)
	return c.DedupeStore.Commit(ctx, id)
}

func (c *claims) Release(ctx context.Context, id string) error {
	c.released = append(c.released, id)
	return c.DedupeStore.Release(ctx, id)
}

// syncer returns a Syncer of "unicom" with peer "telecom" reached by peer.
func syncer(t testing.TB, proc dcsync.Processor, peer dcsync.Sender, audit dcsync.AuditLog) *dcsync.Syncer {
	t.Helper()
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: proc, Audit: audit,
		Peers: map[string]dcsync.Sender{"telecom": peer}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stamped returns a write of origin, as a peer's Syncer stamps it.
func stamped(origin, id string) *dcsync.Request {
	return &dcsync.Request{ID: id, Origin: origin, Key: "k", Op: "set",
		Version: uint64(time.Now().UnixMilli()) << 16}
}

// A forged origin fails its own request, permanently, and the rest of its
// batch flows on; the Collector refuses the same batch whole.
func TestCollectForgedOriginFailsAlone(t *testing.T) {
	proc := &processor{}
	s := syncer(t, proc, &sender{}, nil)
	batch := []*dcsync.Request{stamped("telecom", "a"), stamped("mobile", "forged"), nil, stamped("telecom", "c")}
	if err := s.Collector().Collect(context.Background(), "telecom", batch); !errors.Is(err, dcsync.ErrForgedOrigin) {
		t.Fatalf("Collector: %v, want the batch refused as forged", err)
	}
	errs := hop.Of(s).Collect(context.Background(), "telecom", batch, nil, nil)
	if len(errs) != 4 || errs[0] != nil || !errors.Is(errs[1], dcsync.ErrForgedOrigin) || !dcsync.IsPermanent(errs[1]) ||
		!errors.Is(errs[2], dcsync.ErrNilRequest) || errs[3] != nil {
		t.Fatalf("errors %v: want the forged and the nil request failed alone", errs)
	}
	if got := proc.ids(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("applied %v, want a and c", got)
	}
	if st := s.Stats(); st.Applied != 2 || st.Collected != 2 || st.Invalid < 3 {
		t.Fatalf("stats %+v: want 2 collected and applied, the refusals counted invalid", st)
	}
	errs = hop.Of(s).Collect(context.Background(), "mobile", batch[:1], nil, nil)
	if !errors.Is(errs[0], dcsync.ErrUnknownPeer) {
		t.Fatalf("from an unknown peer: %v", errs)
	}
}

// A write the next hop fails is released, not committed, and the hop
// claims it again when it comes back; a write it took is committed, and
// dropped as a duplicate when it comes back. Nothing is applied here: the
// apply hop does that.
func TestCollectCommitsOnlyWhatNextTook(t *testing.T) {
	proc := &processor{}
	s := syncer(t, proc, &sender{}, nil)
	store := &claims{DedupeStore: &dcsync.MemoryDedupe{}}
	down := errors.New("apply queue unavailable")
	var handed []string
	next := func(_ context.Context, reqs []*dcsync.Request) []error {
		errs := make([]error, len(reqs))
		for i, r := range reqs {
			if r.ID == "b" {
				errs[i] = down
				continue
			}
			handed = append(handed, r.ID)
		}
		return errs
	}
	batch := []*dcsync.Request{stamped("telecom", "a"), stamped("telecom", "b")}
	errs := hop.Of(s).Collect(context.Background(), "telecom", batch, store, next)
	if errs[0] != nil || !errors.Is(errs[1], down) {
		t.Fatalf("errors %v: want b failed with the next hop's error", errs)
	}
	if !slices.Equal(store.committed, []string{"a"}) || !slices.Equal(store.released, []string{"b"}) {
		t.Fatalf("committed %v, released %v: want a committed and b released", store.committed, store.released)
	}
	if len(proc.ids()) != 0 {
		t.Fatalf("the collect hop applied %v", proc.ids())
	}
	handed = nil
	next2 := func(_ context.Context, reqs []*dcsync.Request) []error {
		for _, r := range reqs {
			handed = append(handed, r.ID)
		}
		return nil
	}
	if err := hop.Err(hop.Of(s).Collect(context.Background(), "telecom", batch, store, next2)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(handed, []string{"b"}) || s.Stats().Duplicates != 1 {
		t.Fatalf("handed %v on the retry, stats %+v: want b handed on and a dropped as a duplicate", handed, s.Stats())
	}
	if hop.Of(s).Dedupe() == nil {
		t.Fatal("no DedupeStore")
	}
}

// A panicking next hop fails its batch, and releases its claims.
func TestCollectNextPanics(t *testing.T) {
	s := syncer(t, &processor{}, &sender{}, nil)
	store := &claims{DedupeStore: &dcsync.MemoryDedupe{}}
	errs := hop.Of(s).Collect(context.Background(), "telecom", []*dcsync.Request{stamped("telecom", "a")}, store,
		func(context.Context, []*dcsync.Request) []error { panic("boom") })
	if !errors.Is(errs[0], dcsync.ErrPanic) || !slices.Equal(store.released, []string{"a"}) {
		t.Fatalf("errors %v, released %v", errs, store.released)
	}
}

// Applying a write that originated here, written ahead, records it as
// processed here, carrying the request for the reconciler, and counts it
// as written; a write from a peer gets an apply record.
func TestApplyRecordsOwnWritesAsProcessed(t *testing.T) {
	proc := &processor{}
	audit := memaudit.New(0)
	s := syncer(t, proc, &sender{}, audit)
	own, theirs := stamped("unicom", "own"), stamped("telecom", "theirs")
	if err := hop.Err(hop.Of(s).Apply(context.Background(), []*dcsync.Request{own, theirs})); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req    *dcsync.Request
		stage  dcsync.Stage
		source bool
	}{{own, dcsync.StageProcess, true}, {theirs, dcsync.StageApply, false}} {
		page, err := audit.Trails(context.Background(), dcsync.TrailQuery{Origin: c.req.Origin,
			From: c.req.Time().Add(-time.Minute), To: c.req.Time().Add(time.Minute)})
		if err != nil || len(page.Trails) != 1 {
			t.Fatalf("%s: trails %+v, %v", c.req.ID, page, err)
		}
		tr := page.Trails[0]
		if len(tr.Records) != 1 || tr.Records[0].Stage != c.stage || tr.Records[0].DC != "unicom" ||
			(tr.Source() != nil) != c.source {
			t.Fatalf("%s: records %+v; want one %s record here", c.req.ID, tr.Records, c.stage)
		}
	}
	if st := s.Stats(); st.Written != 1 || st.Applied != 1 {
		t.Fatalf("stats %+v: want the own write counted written, the peer's applied", st)
	}
}

// Ship delivers through the sender it is given, the peer's own when nil,
// and records the attempt.
func TestShip(t *testing.T) {
	own, given := &sender{}, &sender{}
	s := syncer(t, &processor{}, own, nil)
	st := hop.Of(s)
	if err := hop.Err(st.Ship(context.Background(), "telecom", given, []*dcsync.Request{stamped("unicom", "a")})); err != nil {
		t.Fatal(err)
	}
	if err := hop.Err(st.Ship(context.Background(), "telecom", nil, []*dcsync.Request{stamped("unicom", "b")})); err != nil {
		t.Fatal(err)
	}
	if len(given.sent) != 1 || given.sent[0][0] != "a" || len(own.sent) != 1 || own.sent[0][0] != "b" {
		t.Fatalf("given sender got %v, own %v", given.sent, own.sent)
	}
	if s.Stats().Shipped != 2 {
		t.Fatalf("stats %+v", s.Stats())
	}
	if errs := st.Ship(context.Background(), "mobile", nil, []*dcsync.Request{stamped("unicom", "c")}); !errors.Is(errs[0], dcsync.ErrUnknownPeer) {
		t.Fatalf("to an unknown peer: %v", errs)
	}
}
