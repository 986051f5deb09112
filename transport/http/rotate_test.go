package http_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// switchSender hands batches to the sender it holds now: a sending
// process restarted gracefully with a new secret (its batches in flight
// answered first), without the Syncer noticing.
type switchSender struct {
	mu  sync.RWMutex // held shared by each Send
	cur *dchttp.Sender
}

func (s *switchSender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Send(ctx, reqs)
}

// restart switches to next once the batches in flight are answered.
func (s *switchSender) restart(next *dchttp.Sender) {
	s.mu.Lock()
	s.cur = next
	s.mu.Unlock()
}

func (s *switchSender) Close() error { return nil }

// A secret rotates while writes flow, by the steps SECURITY.md gives:
// receivers accept the next secret, senders switch to it, receivers drop
// the old one. No batch is refused and every write is applied once.
func TestSecretRotationUnderLoad(t *testing.T) {
	oldSecret, newSecret := wiretest.Secret, []byte("the next secret, 32 bytes long..")
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	var handler atomic.Pointer[http.Handler]
	serve := func(cfg dchttp.HandlerConfig) {
		h := dchttp.NewHandler(recv.Collector(), cfg)
		handler.Store(&h)
	}
	serve(dchttp.HandlerConfig{Secrets: map[string][]byte{"unicom": oldSecret}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	sender := func(secret []byte) *dchttp.Sender {
		s, err := dchttp.NewSender(dchttp.SenderConfig{URL: srv.URL, From: "unicom", Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	sw := &switchSender{cur: sender(oldSecret)}
	origin, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": sw},
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()

	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100_000 { // bounded; stopped long before
				select {
				case <-stop:
					return
				default:
				}
				if err := origin.Write(context.Background(), &dcsync.Request{Key: fmt.Sprintf("k-%d-%d", w, i), Op: "set"}); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		})
	}
	progress := func(step string) {
		t.Helper()
		want := store.Count() + 200
		if !store.WaitCount(want, time.Minute) {
			t.Fatalf("%s: no progress (%d applied)", step, store.Count())
		}
	}
	progress("old secret")
	serve(dchttp.HandlerConfig{Secrets: map[string][]byte{"unicom": oldSecret},
		NextSecrets: map[string][]byte{"unicom": newSecret}})
	progress("receivers accept the next secret")
	sw.restart(sender(newSecret))
	progress("senders switched")
	serve(dchttp.HandlerConfig{Secrets: map[string][]byte{"unicom": newSecret}})
	progress("old secret dropped")
	close(stop)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := origin.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n := written.Load()
	if !store.WaitCount(n, time.Minute) {
		t.Fatalf("%d of %d writes applied", store.Count(), n)
	}
	if st := origin.Stats(); st.ShipFailed != 0 || st.Shipped != uint64(n) {
		t.Fatalf("origin stats %+v, %d written", st, n)
	}
	if st := recv.Stats(); st.RefusedUnauthenticated != 0 || st.Collected != uint64(n) || store.Count() != n {
		t.Fatalf("receiver stats %+v, %d applied, %d written", st, store.Count(), n)
	}
}
