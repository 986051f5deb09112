package wiretest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
)

// TestRestart kills the receiving server while it applies a batch — that
// batch's acknowledgement is lost — and restarts it on the same port at
// once; later it kills it again and keeps writing while it is down before
// restarting it. It checks that every write arrives, through the sender's
// retries and a reconciler pass, and that none is applied twice.
func TestRestart(t *testing.T, tr Transport) {
	const total = 3000
	const killAt = 500 // the apply during which the server dies
	ctx := context.Background()
	audit := memaudit.New(0)
	store := NewStore()
	recv := Receiver(t, store, audit)

	ln := Listen(t)
	addr := ln.Addr().String()
	var mu sync.Mutex // guards kill
	kill := tr.Serve(t, ln, recv.Collector(), Secrets())
	restarted := make(chan struct{})
	store.OnApply(func(n int64) {
		if n != killAt {
			return
		}
		// Kill the server under this very batch and restart it; finish
		// the apply only then, so the old connection never answers.
		go func() {
			mu.Lock()
			kill()
			kill = tr.Serve(t, Relisten(t, addr), recv.Collector(), Secrets())
			mu.Unlock()
			close(restarted)
		}()
		select {
		case <-restarted:
		case <-time.After(10 * time.Second):
		}
	})

	snd := tr.Sender(t, addr, "unicom", Secret, false)
	back := dcsync.Backoff{Initial: 2 * time.Millisecond, Max: 100 * time.Millisecond, Attempts: 8}
	local := NewStore()
	src, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": snd},
		Processor: local, Audit: audit,
		Delivery: dcsync.Delivery{BatchSize: 64, Workers: 2, Timeout: 2 * time.Second, Backoff: back}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	ids := make([]string, 0, total)
	write := func(from, to int) {
		for i := from; i < to; i++ {
			req := &dcsync.Request{Key: fmt.Sprintf("key-%d", i%500), Op: "set", Payload: []byte(fmt.Sprint(i))}
			if err := src.Write(ctx, req); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, req.ID)
		}
	}
	write(0, total/2)
	select {
	case <-restarted:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server was never killed: %d applied", store.Count())
	}
	if err := src.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	kill() // and now a longer outage
	mu.Unlock()
	write(total/2, 3*total/4)
	if err := src.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	defer tr.Serve(t, Relisten(t, addr), recv.Collector(), Secrets())()
	write(3*total/4, total)
	if err := src.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Writes given up while the server was down are the reconciler's.
	rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom",
		Peers: map[string]dcsync.Sender{"telecom": snd}, Audit: audit, Grace: -1, Backoff: back})
	if err != nil {
		t.Fatal(err)
	}
	for pass := 0; pass < 20 && missing(store, ids) > 0; pass++ {
		if err := recv.Flush(ctxTimeout(t, 10*time.Second)); err != nil { // apply records into the log
			t.Fatal(err)
		}
		rep, err := rec.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("reconcile pass %d: %+v", pass, rep)
	}
	if n := missing(store, ids); n > 0 {
		t.Fatalf("%d of %d writes never arrived", n, total)
	}
	for _, id := range ids {
		if n := store.Applies(id); n != 1 {
			t.Fatalf("write %s applied %d times", id, n)
		}
	}
	if store.Count() != total {
		t.Fatalf("%d applies for %d writes", store.Count(), total)
	}
	if local.Digest() != store.Digest() {
		t.Fatal("the two datacenters hold different values")
	}
	t.Logf("sender: %+v; receiver: %+v", src.Stats(), recv.Stats())
}

func missing(s *Store, ids []string) int {
	n := 0
	for _, id := range ids {
		if s.Applies(id) == 0 {
			n++
		}
	}
	return n
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
