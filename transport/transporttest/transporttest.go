// Package transporttest tests a transport — a dcsync.Sender and the server
// that hands what it receives to a dcsync.Collector — against what a Syncer
// relies on: requests arrive whole; per-request errors come back per
// request, with their class (permanent or retryable) intact; a batch the
// peer already applied is acknowledged again, not applied twice; a forged
// origin is refused; a peer that does not answer, or is not there, fails
// the Send retryably and within its context; a closed Sender sends no more;
// and a Syncer over the transport delivers every write exactly once.
//
// The transports of this module (memory, http, grpc) run it, and so can a
// transport of your own:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Transport{
//			Serve: func(t testing.TB, c dcsync.Collector) (string, func()) {
//				srv := mytransport.Serve(c, "127.0.0.1:0") // accepts batches from "unicom"
//				return srv.Addr(), srv.Kill
//			},
//			Sender: func(t testing.TB, addr string) dcsync.Sender {
//				return mytransport.NewSender(addr, "unicom")
//			},
//		})
//	}
//
// It also holds Store, a recording Processor for tests of your own.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// The datacenters of the tests: From sends, To serves.
const (
	From = "unicom"
	To   = "telecom"
)

// Transport starts the two ends of the transport under test.
type Transport struct {
	// Serve serves c, the Collector of datacenter To, to senders from
	// datacenter From, in the background, and returns the address a Sender
	// reaches it at (any name, for a transport without addresses). kill
	// stops it at once, without draining; the server must be stopped when
	// the test ends too.
	Serve func(t testing.TB, c dcsync.Collector) (addr string, kill func())
	// Sender returns a Sender from datacenter From to the server at addr.
	// The suite closes it.
	Sender func(t testing.TB, addr string) dcsync.Sender
}

// Run runs every test of the package against tr.
func Run(t *testing.T, tr Transport) {
	for _, c := range []struct {
		name string
		test func(t *testing.T, tr Transport)
	}{
		{"DeliversRequestsWhole", deliversWhole},
		{"ReportsErrorsPerRequest", errorsPerRequest},
		{"AcknowledgesDuplicates", acknowledgesDuplicates},
		{"RefusesForgedOrigin", refusesForgedOrigin},
		{"HonoursDeadline", honoursDeadline},
		{"UnreachableIsRetryable", unreachableIsRetryable},
		{"ClosedSenderFails", closedSenderFails},
		{"SyncerDeliversOnce", syncerDeliversOnce},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, tr) })
	}
}

// Receiver returns a Syncer of datacenter To that accepts writes from
// From and applies them to p; it is closed when the test ends.
func Receiver(t testing.TB, p dcsync.Processor, audit dcsync.AuditLog) *dcsync.Syncer {
	t.Helper()
	s, err := dcsync.New(dcsync.Config{DC: To, Peers: map[string]dcsync.Sender{From: nopSender{}},
		Processor: p, Audit: audit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// nopSender stands for the direction a test does not use.
type nopSender struct{}

func (nopSender) Send(context.Context, []*dcsync.Request) error { return nil }
func (nopSender) Close() error                                  { return nil }

// serve serves a Receiver applying to store, and returns a Sender to it.
func serve(t *testing.T, tr Transport, store *Store) dcsync.Sender {
	t.Helper()
	addr, _ := tr.Serve(t, Receiver(t, store, nil).Collector())
	return sender(t, tr, addr)
}

func sender(t *testing.T, tr Transport, addr string) dcsync.Sender {
	t.Helper()
	s := tr.Sender(t, addr)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var batches atomic.Int64

// Batch returns n valid writes from From, as its Syncer would stamp them.
func Batch(n int) []*dcsync.Request {
	version := uint64(time.Now().UnixMilli()) << 16 // a hybrid logical clock reading
	b := batches.Add(1)
	reqs := make([]*dcsync.Request, n)
	for i := range reqs {
		reqs[i] = &dcsync.Request{ID: fmt.Sprintf("req-%d-%d", b, i), Origin: From,
			Key: fmt.Sprintf("key-%d-%d", b, i), Op: "set", Payload: []byte("value"), Version: version + uint64(i)}
	}
	return reqs
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Every field of a request arrives as sent, binary payloads and headers
// included.
func deliversWhole(t *testing.T, tr Transport) {
	store := NewStore()
	s := serve(t, tr, store)
	reqs := Batch(3)
	reqs[0].Payload = make([]byte, 256)
	for i := range reqs[0].Payload {
		reqs[0].Payload[i] = byte(i)
	}
	reqs[1].Header = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme"}
	reqs[2].Payload = nil
	reqs[2].Op = "delete"
	if err := s.Send(ctxTimeout(t, time.Minute), reqs); err != nil {
		t.Fatal(err)
	}
	for _, want := range reqs {
		got := store.Get(want.Key)
		if got == nil {
			t.Fatalf("%s not applied", want.ID)
		}
		if got.ID != want.ID || got.Origin != want.Origin || got.Op != want.Op || got.Version != want.Version ||
			!bytes.Equal(got.Payload, want.Payload) || !maps.Equal(got.Header, want.Header) {
			t.Errorf("sent %+v, applied %+v", want, got)
		}
	}
}

// An invalid request fails for good and a failed apply retryably, each in
// its place in a *dcsync.BatchError; the rest of the batch is applied, and
// the failed apply succeeds when sent again.
func errorsPerRequest(t *testing.T, tr Transport) {
	store := NewStore()
	s := serve(t, tr, store)
	reqs := Batch(4)
	reqs[1].Key = ""
	store.FailKey(reqs[2].Key, errors.New("database timeout"))
	err := s.Send(ctxTimeout(t, time.Minute), reqs)
	var be *dcsync.BatchError
	if !errors.As(err, &be) || len(be.Errs) != 4 {
		t.Fatalf("want a *dcsync.BatchError of 4, got %v", err)
	}
	if be.Errs[0] != nil || be.Errs[3] != nil {
		t.Errorf("valid requests failed: %v", err)
	}
	if !errors.Is(be.Errs[1], dcsync.ErrInvalid) || !dcsync.IsPermanent(be.Errs[1]) {
		t.Errorf("empty key: %v, want permanent dcsync.ErrInvalid", be.Errs[1])
	}
	if be.Errs[2] == nil || dcsync.IsPermanent(be.Errs[2]) {
		t.Errorf("failed apply: %v, want a retryable error", be.Errs[2])
	}
	if store.Applies(reqs[0].ID) != 1 || store.Applies(reqs[3].ID) != 1 {
		t.Errorf("the valid requests were not applied once each")
	}
	store.FailKey(reqs[2].Key, nil)
	if err := s.Send(ctxTimeout(t, time.Minute), reqs[2:3]); err != nil {
		t.Fatalf("resend after the store recovered: %v", err)
	}
	if store.Applies(reqs[2].ID) != 1 {
		t.Errorf("resent request applied %d times", store.Applies(reqs[2].ID))
	}
}

// A batch sent twice — its acknowledgement was lost — succeeds twice and
// is applied once.
func acknowledgesDuplicates(t *testing.T, tr Transport) {
	store := NewStore()
	s := serve(t, tr, store)
	reqs := Batch(5)
	for range 2 {
		if err := s.Send(ctxTimeout(t, time.Minute), reqs); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range reqs {
		if n := store.Applies(r.ID); n != 1 {
			t.Errorf("%s applied %d times", r.ID, n)
		}
	}
}

// A request whose origin is not the sending datacenter is refused for
// good, and the Sender goes on sending after it.
func refusesForgedOrigin(t *testing.T, tr Transport) {
	store := NewStore()
	s := serve(t, tr, store)
	reqs := Batch(1)
	reqs[0].Origin = To
	err := s.Send(ctxTimeout(t, time.Minute), reqs)
	if !errors.Is(err, dcsync.ErrUnauthenticated) || !dcsync.IsPermanent(err) {
		t.Errorf("forged origin: %v, want dcsync.ErrUnauthenticated", err)
	}
	if err := s.Send(ctxTimeout(t, time.Minute), Batch(2)); err != nil {
		t.Errorf("after a refused batch: %v", err)
	}
	if store.Count() != 2 {
		t.Errorf("%d applied, want 2", store.Count())
	}
}

// blocking is a Collector that does not answer until released, or until
// well after its context ended: a peer that hangs, past the sender's
// deadline even when the transport hands the deadline on. (An in-process
// transport, whose Send is the Collect call, returns then.)
type blocking chan struct{}

func (b blocking) Collect(ctx context.Context, _ string, _ []*dcsync.Request) error {
	select {
	case <-b:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-b:
	case <-time.After(2 * time.Second):
	}
	return ctx.Err()
}

// A peer that does not answer in time: the context ends the wait, and the
// batch is retryable.
func honoursDeadline(t *testing.T, tr Transport) {
	release := make(blocking)
	defer close(release)
	addr, _ := tr.Serve(t, release)
	s := sender(t, tr, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, Batch(1))
	if !errors.Is(err, context.DeadlineExceeded) || dcsync.IsPermanent(err) {
		t.Fatalf("%v, want a retryable context.DeadlineExceeded", err)
	}
}

// A peer that is gone fails the Send retryably, and once it is back the
// same Sender delivers again.
func unreachableIsRetryable(t *testing.T, tr Transport) {
	store := NewStore()
	recv := Receiver(t, store, nil)
	addr, kill := tr.Serve(t, recv.Collector())
	s := sender(t, tr, addr)
	if err := s.Send(ctxTimeout(t, time.Minute), Batch(1)); err != nil {
		t.Fatal(err)
	}
	kill()
	err := s.Send(ctxTimeout(t, time.Minute), Batch(1))
	if err == nil || dcsync.IsPermanent(err) {
		t.Fatalf("peer gone: %v, want a retryable error", err)
	}
}

// A closed Sender fails every Send.
func closedSenderFails(t *testing.T, tr Transport) {
	store := NewStore()
	s := serve(t, tr, store)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctxTimeout(t, time.Minute), Batch(1)); err == nil {
		t.Fatal("Send after Close succeeded")
	}
	if store.Count() != 0 {
		t.Fatalf("%d applied after Close", store.Count())
	}
}

// A Syncer writing through the transport delivers every write once, in
// batches, with several in flight.
func syncerDeliversOnce(t *testing.T, tr Transport) {
	const total = 2000
	remote := NewStore()
	s := serve(t, tr, remote)
	src, err := dcsync.New(dcsync.Config{DC: From, Peers: map[string]dcsync.Sender{To: s}, Processor: NewStore(),
		// Generous bounds: a loaded machine must not fail a delivery.
		Delivery: dcsync.Delivery{BatchSize: 64, Workers: 4, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ids := make([]string, 0, total)
	for i := range total {
		req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%300), Op: "set", Payload: fmt.Appendf(nil, "v%d", i)}
		if err := src.Write(ctxTimeout(t, time.Minute), req); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, req.ID)
	}
	if err := src.Flush(ctxTimeout(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := src.Stats(); st.ShipFailed > 0 {
		t.Fatalf("deliveries failed: %+v", st)
	}
	for _, id := range ids {
		if n := remote.Applies(id); n != 1 {
			t.Fatalf("write %s applied %d times", id, n)
		}
	}
}
