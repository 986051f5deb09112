package dcsync

import (
	"context"
	"errors"
	"testing"
)

// countingSender counts the batches it is given and fails them with err.
type countingSender struct {
	batches int
	err     error
	closed  bool
}

func (c *countingSender) Send(context.Context, []*Request) error { c.batches++; return c.err }
func (c *countingSender) Close() error                           { c.closed = true; return nil }

func TestRoundRobin(t *testing.T) {
	ctx := context.Background()
	a, b, c := &countingSender{}, &countingSender{}, &countingSender{}
	rr := &roundRobin{senders: []Sender{a, b, c}} // from a, as RoundRobin may not
	for range 9 {
		if err := rr.Send(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if a.batches != 3 || b.batches != 3 || c.batches != 3 {
		t.Fatalf("batches %d %d %d, want 3 each", a.batches, b.batches, c.batches)
	}

	// An instance down: its turns go to the next one, and nothing fails.
	b.err = errors.New("connection refused")
	for range 3 {
		if err := rr.Send(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if a.batches != 4 || b.batches != 4 || c.batches != 5 {
		t.Fatalf("with b down: batches %d %d %d, want 4 4 5", a.batches, b.batches, c.batches)
	}

	// A permanent error or a partial failure is the answer: not tried again.
	total := func() int { return a.batches + b.batches + c.batches }
	for _, err := range []error{ErrInvalid, &BatchError{Errs: []error{errors.New("x")}}} {
		b.err = err
		for i := 0; ; i++ {
			before := total()
			got := rr.Send(ctx, nil)
			if got == nil && i < 3 {
				continue
			}
			if !errors.Is(got, err) || total() != before+1 {
				t.Fatalf("%v: got %v after %d batches, want it after one", err, got, total()-before)
			}
			break
		}
	}

	// Down everywhere: the last error.
	down := errors.New("down")
	a.err, b.err, c.err = down, down, down
	if err := rr.Send(ctx, nil); !errors.Is(err, down) {
		t.Fatalf("all down: %v", err)
	}
	if err := rr.Close(); err != nil || !a.closed || !b.closed || !c.closed {
		t.Fatalf("Close: %v, closed %v %v %v", err, a.closed, b.closed, c.closed)
	}
}
