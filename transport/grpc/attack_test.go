package grpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dcsync/dcsync/internal/wire/wiregrpc"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcsyncgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// A stream that sends nothing is ended with Unauthenticated once
// FirstTimeout passes; one that authenticated and then idles is ended with
// Unavailable once IdleTimeout passes. Neither holds the server's
// goroutines for longer.
func TestStreamDeadlines(t *testing.T) {
	p := newPeer(t, dcsyncgrpc.ServerConfig{FirstTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // generous: the server ends them
	defer cancel()
	silent, err := wiregrpc.NewReplicationClient(p.conn).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("silent stream: %v, want Unauthenticated", err)
	}
	idle, err := wiregrpc.NewReplicationClient(p.conn).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, body := batch(t, 2)
	if err := idle.Send(envelope(t, "unicom", wiretest.Secret, body)); err != nil {
		t.Fatal(err)
	}
	if res, err := idle.Recv(); err != nil || res.Code != 0 {
		t.Fatalf("batch: %v %v", res, err)
	}
	if _, err := idle.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("idle stream: %v, want Unavailable", err)
	}
	if n := p.store.Count(); n != 2 {
		t.Fatalf("%d applied, want 2", n)
	}
	// A forged batch is refused, counted and applied nowhere.
	if _, st, _ := exchange(t, p, envelope(t, "unicom", []byte("not the secret we share, at all"), body)); st == nil ||
		st.Code() != codes.Unauthenticated {
		t.Fatalf("forged: %v", st)
	}
	if got := p.recv.Stats(); got.RefusedUnauthenticated != 1 || p.store.Count() != 2 {
		t.Fatalf("stats %+v after a forged batch, %d applied", got, p.store.Count())
	}
}

// MaxStreams bounds the streams of one connection: with two held open, a
// third is not served.
func TestMaxStreams(t *testing.T) {
	p := newPeer(t, dcsyncgrpc.ServerConfig{MaxStreams: 2, FirstTimeout: time.Minute})
	_, body := batch(t, 1)
	if res, st, _ := exchange(t, p, envelope(t, "unicom", wiretest.Secret, body)); st != nil {
		t.Fatalf("%v %v", res, st) // the connection knows the server's settings from here on
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		if _, err := wiregrpc.NewReplicationClient(p.conn).Collect(ctx); err != nil { // held open, silent
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	third, err := wiregrpc.NewReplicationClient(p.conn).Collect(short)
	if err == nil {
		_ = third.Send(envelope(t, "unicom", wiretest.Secret, body))
		_, err = third.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third stream: %v, want it never served", err)
	}
	if n := p.store.Count(); n != 1 {
		t.Fatalf("%d applied, want 1", n)
	}
}
