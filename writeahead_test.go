package dcsync_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/hop"
)

// queueReship is a WriteAheadReship that only queues, as a durable outbox
// would, or fails.
type queueReship struct {
	mu     sync.Mutex
	queued []*dcsync.Request
	err    error
}

func (q *queueReship) Reship(_ context.Context, req *dcsync.Request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.queued = append(q.queued, req)
	return nil
}

// WritesAhead makes it a dcsync.WriteAheadReship.
func (q *queueReship) WritesAhead() {}

// With a WriteAheadReship, Write only hands the write to the Reship; the
// Reship's workers apply it through the apply hop, which records it as
// processed here, with the request for the reconciler.
func TestWriteAheadReship(t *testing.T) {
	var applied []string
	proc := dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error {
		applied = append(applied, r.ID)
		return nil
	})
	q := &queueReship{}
	audit := memaudit.New(0)
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: proc, Audit: audit, Reship: q,
		Peers: map[string]dcsync.Sender{"telecom": &recordingSender{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	q.err = errors.New("outbox down")
	if err := s.Write(ctx, &dcsync.Request{Key: "k", Op: "set"}); err == nil {
		t.Fatal("Write succeeded with its Reship failing")
	}
	q.err = nil
	req := &dcsync.Request{Key: "k", Op: "set"}
	if err := s.Write(ctx, req); err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 || len(q.queued) != 1 || q.queued[0] != req {
		t.Fatalf("Write applied %v and queued %v; want nothing applied, the write queued", applied, q.queued)
	}
	if err := hop.Err(hop.Of(s).Apply(ctx, q.queued)); err != nil { // the Reship's worker
		t.Fatal(err)
	}
	if len(applied) != 1 || applied[0] != req.ID {
		t.Fatalf("applied %v, want %s", applied, req.ID)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := audit.Trails(ctx, dcsync.TrailQuery{Origin: "unicom", From: req.Time().Add(-time.Minute), To: req.Time().Add(time.Minute)})
	if err != nil || len(page.Trails) != 1 {
		t.Fatalf("trails %+v, %v; want the one write's", page, err)
	}
	if tr := page.Trails[0]; !tr.Applied("unicom") || tr.Source() == nil || tr.Source().ID != req.ID {
		t.Errorf("trail %+v: want an ok process record carrying the write", tr)
	}
	if st := s.Stats(); st.Written != 1 || st.Rejected != 0 || st.Applied != 0 {
		t.Errorf("stats %+v, want 1 written, none counted as a collected write", st)
	}
}
