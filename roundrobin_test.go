package dcsync

import (
	"context"
	"errors"
	"testing"
	"time"
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
	rr := RoundRobin(a, b, c).(*roundRobin)
	rr.next.Store(0)          // start on a
	rr.cooldown = time.Hour   // no sender comes back by itself during the test
	send := func(times int) { // sends that must succeed
		t.Helper()
		for range times {
			if err := rr.Send(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(when string, na, nb, nc int) {
		t.Helper()
		if a.batches != na || b.batches != nb || c.batches != nc {
			t.Fatalf("%s: batches %d %d %d, want %d %d %d", when, a.batches, b.batches, c.batches, na, nb, nc)
		}
	}
	send(9)
	want("in turn", 3, 3, 3)

	// An instance down: its batch goes to the next one at once, and then
	// it is left out while the others share the batches.
	b.err = errors.New("connection refused")
	send(2)
	want("b failing", 4, 4, 4)
	send(4)
	want("b left out", 6, 4, 6)
	b.err = nil
	rr.down[1].Store(0) // its cooldown is over
	send(3)
	want("b back", 7, 5, 7)

	// A permanent error or a partial failure is the answer: not tried
	// elsewhere, and the sender is not left out.
	total := func() int { return a.batches + b.batches + c.batches }
	for _, err := range []error{ErrInvalid, &BatchError{Errs: []error{errors.New("x")}}} {
		b.err = err
		for i := 0; ; i++ {
			before := total()
			got := rr.Send(ctx, nil)
			if got == nil && i < 3 {
				continue
			}
			if !errors.Is(got, err) || total() != before+1 || rr.down[1].Load() != 0 {
				t.Fatalf("%v: got %v after %d batches, want it after one", err, got, total()-before)
			}
			break
		}
	}

	// Down everywhere: each is tried, every time, until one is back; then
	// it alone takes the batches.
	down := errors.New("down")
	a.err, b.err, c.err = down, down, down
	for range 2 {
		before := total()
		if err := rr.Send(ctx, nil); !errors.Is(err, down) || total() != before+3 {
			t.Fatalf("all down: %v after %d batches", err, total()-before)
		}
	}
	c.err = nil
	send(1)
	before := c.batches
	send(3)
	if c.batches != before+3 {
		t.Fatalf("c back alone: it took %d of 3 batches", c.batches-before)
	}
	if err := rr.Close(); err != nil || !a.closed || !b.closed || !c.closed {
		t.Fatalf("Close: %v, closed %v %v %v", err, a.closed, b.closed, c.closed)
	}
}
