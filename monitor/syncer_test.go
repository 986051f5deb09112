package monitor_test

import (
	"context"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/monitor"
)

// blockedSender holds every Send until release is closed.
type blockedSender struct{ release chan struct{} }

func (b blockedSender) Send(ctx context.Context, _ []*dcsync.Request) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (blockedSender) Close() error { return nil }

// SyncerSource reports the Syncer's own counts: the exact backlog of a
// peer that takes nothing, transport refusals by reason, the audit queue.
func TestSyncerSource(t *testing.T) {
	peer := blockedSender{release: make(chan struct{})}
	mon := monitor.New("a", []string{"b"})
	s, err := dcsync.New(dcsync.Config{DC: "a", Peers: map[string]dcsync.Sender{"b": peer},
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil }),
		Audit:     auditmem.New(0), Observer: mon, Delivery: dcsync.Delivery{Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer close(peer.release)
	mon.AddSource(monitor.SyncerSource(s))
	for range 5 {
		if err := s.Write(context.Background(), &dcsync.Request{Key: "k", Op: "set"}); err != nil {
			t.Fatal(err)
		}
	}
	type refuser interface{ Refused(error) }
	r := s.Collector().(refuser)
	r.Refused(dcsync.ErrUnauthenticated)
	r.Refused(dcsync.ErrUnauthenticated)
	r.Refused(dcsync.ErrBatchTooLarge)

	snap := mon.Snapshot(context.Background())
	if b := snap.Peer("b"); b.Backlog != 5 {
		t.Errorf("backlog of b %d, want the 5 writes it has not taken", b.Backlog)
	}
	want := map[string]uint64{"unauthenticated": 2, "invalid": 0, "too_large": 1, "clock_skew": 0}
	for k, v := range want {
		if snap.Refused[k] != v {
			t.Errorf("refused %s: %d, want %d (%v)", k, snap.Refused[k], v, snap.Refused)
		}
	}
	if snap.Audit == nil || snap.Audit.Dropped != 0 || snap.Audit.FullWaits != 0 {
		t.Errorf("audit: %+v", snap.Audit)
	}
}
