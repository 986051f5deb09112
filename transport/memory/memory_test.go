package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/dcsync/dcsync"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// collector records batches and fails the requests whose Key is "bad".
type collector struct {
	mu      sync.Mutex
	batches [][]*dcsync.Request
}

func (c *collector) Collect(_ context.Context, from string, reqs []*dcsync.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, reqs)
	errs := make([]error, len(reqs))
	failed := false
	for i, r := range reqs {
		if r.Key == "bad" {
			errs[i], failed = dcsync.ErrInvalidID, true
		}
	}
	if failed {
		return &dcsync.BatchError{Errs: errs}
	}
	return nil
}

func batch(keys ...string) []*dcsync.Request {
	out := make([]*dcsync.Request, len(keys))
	for i, k := range keys {
		out[i] = &dcsync.Request{ID: k, Key: k, Origin: "a"}
	}
	return out
}

func TestSenderDeliversCopies(t *testing.T) {
	n := memtransport.NewNetwork(1)
	var c collector
	s := n.Sender("a", "b")
	if err := s.Send(context.Background(), batch("x")); err == nil {
		t.Fatal("send to an unattached datacenter succeeded")
	}
	n.Attach("b", &c)
	reqs := batch("x", "y")
	if err := s.Send(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if len(c.batches) != 1 || c.batches[0][0] == reqs[0] || c.batches[0][1].Key != "y" {
		t.Fatalf("delivered %+v", c.batches)
	}
	s.Close()
	if err := s.Send(context.Background(), reqs); err == nil {
		t.Fatal("send after Close succeeded")
	}
}

func TestFaults(t *testing.T) {
	n := memtransport.NewNetwork(1)
	var c collector
	n.Attach("b", &c)
	s := n.Sender("a", "b")

	n.SetFaults("a", "b", memtransport.Faults{Fail: 1})
	if err := s.Send(context.Background(), batch("x")); !errors.Is(err, memtransport.ErrInjected) || len(c.batches) != 0 {
		t.Fatalf("Fail: %v, %d delivered", err, len(c.batches))
	}
	n.SetFaults("a", "b", memtransport.Faults{DropAck: 1})
	if err := s.Send(context.Background(), batch("x")); !errors.Is(err, memtransport.ErrInjected) || len(c.batches) != 1 {
		t.Fatalf("DropAck: %v, %d delivered", err, len(c.batches))
	}
	n.SetFaults("a", "b", memtransport.Faults{Duplicate: 1})
	s.Send(context.Background(), batch("x"))
	if len(c.batches) != 3 {
		t.Fatalf("Duplicate: %d batches delivered, want 3", len(c.batches))
	}
}

func TestReorderKeepsPerRequestResults(t *testing.T) {
	n := memtransport.NewNetwork(7)
	var c collector
	n.Attach("b", &c)
	n.SetFaults("a", "b", memtransport.Faults{Reorder: 1})
	keys := []string{"k0", "k1", "bad", "k3", "k4", "k5", "k6", "k7"}
	err := n.Sender("a", "b").Send(context.Background(), batch(keys...))
	var be *dcsync.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("got %v", err)
	}
	for i, e := range be.Errs {
		if (e != nil) != (keys[i] == "bad") {
			t.Fatalf("result %d (%s) = %v: results not mapped back to the sent order", i, keys[i], e)
		}
	}
	order := ""
	for _, r := range c.batches[0] {
		order += r.Key
	}
	if order == "k0k1badk3k4k5k6k7" {
		t.Fatal("Reorder: 1 delivered in order")
	}
}
