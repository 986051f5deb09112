package wiretest

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/dcsync/dcsync"
)

// Closing fails tb if err is set, and closes c when the test ends: what
// every test does with a sender it creates.
func Closing[C io.Closer](tb testing.TB, c C, err error) C {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// FromUnicom sets the sending datacenter and the secret of a sender's
// config to unicom and Secret where the test left them empty.
func FromUnicom(from *string, secret *[]byte) {
	if *from == "" {
		*from = "unicom"
	}
	if *secret == nil {
		*secret = Secret
	}
}

// Serve serves a Receiver applying to store over tr on loopback, for the
// peers in Secrets, and returns its address.
func Serve(tb testing.TB, tr Transport, store *Store) string {
	tb.Helper()
	ln := Listen(tb)
	tr.Serve(tb, ln, Receiver(tb, store, nil).Collector(), Secrets())
	return ln.Addr().String()
}

// SenderErrors is what a transport's sender shows, beyond the dcsync
// errors, in the cases of TestSenderErrors.
type SenderErrors struct {
	// Closed is the error Send returns after Close.
	Closed error
	// WrongSecret and ForgedOrigin report whether the error of a batch
	// signed with a secret the peer does not know, and of a request whose
	// origin is not the sender, carry the transport's own status for it;
	// nil checks nothing more.
	WrongSecret, ForgedOrigin func(error) bool
}

// shows reports whether err passes check, a check of SenderErrors.
func shows(check func(error) bool, err error) bool { return check == nil || check(err) }

// TestSenderErrors checks that a sender of tr fails what the peer refuses
// with the dcsync error a Syncer acts on: permanent for a wrong secret, one
// invalid request named in a *dcsync.BatchError, a forged origin refused;
// that it sends again after a refused batch; and that a peer nobody
// listens for is retryable.
func TestSenderErrors(t *testing.T, tr Transport, want SenderErrors) {
	store := NewStore()
	addr := Serve(t, tr, store)
	ctx := context.Background()

	reqs, _ := Batch(t, 2)
	err := tr.Sender(t, addr, "unicom", []byte("a secret telecom does not know"), false).Send(ctx, reqs)
	if !errors.Is(err, dcsync.ErrUnauthenticated) || !dcsync.IsPermanent(err) || !shows(want.WrongSecret, err) {
		t.Errorf("wrong secret: %v", err)
	}

	s := tr.Sender(t, addr, "unicom", Secret, false)
	reqs, _ = Batch(t, 3)
	reqs[1].Key = ""
	var be *dcsync.BatchError
	if err := s.Send(ctx, reqs); !errors.As(err, &be) || be.Errs[0] != nil || be.Errs[2] != nil ||
		!errors.Is(be.Errs[1], dcsync.ErrInvalid) {
		t.Errorf("one invalid request: %v", err)
	}
	reqs, _ = Batch(t, 1)
	reqs[0].Origin = "telecom"
	if err := s.Send(ctx, reqs); !errors.Is(err, dcsync.ErrUnauthenticated) || !shows(want.ForgedOrigin, err) {
		t.Errorf("forged origin: %v", err)
	}
	// A stream a refusal ended is replaced.
	reqs, _ = Batch(t, 2)
	if err := s.Send(ctx, reqs); err != nil {
		t.Errorf("after a refused batch: %v", err)
	}

	ln := Listen(t)
	nobody := ln.Addr().String()
	ln.Close()
	if err := tr.Sender(t, nobody, "unicom", Secret, false).Send(ctx, reqs); err == nil || dcsync.IsPermanent(err) {
		t.Errorf("nobody listening: %v", err)
	}

	closed := tr.Sender(t, addr, "unicom", Secret, false)
	_ = closed.Close()
	if err := closed.Send(ctx, reqs); !errors.Is(err, want.Closed) {
		t.Errorf("after Close: %v", err)
	}
	if n := store.Count(); n != 4 {
		t.Fatalf("%d applied, want 4", n)
	}
}
