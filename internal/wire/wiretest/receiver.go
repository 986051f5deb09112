package wiretest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// Named serves a receiver, telecom, whose requireTo says whether stamps
// naming no receiver are refused, and returns its address.
type Named func(tb testing.TB, store *Store, requireTo bool) string

// NamedSender returns a Sender from unicom to addr whose stamps name the
// receiver to ("" for none).
type NamedSender func(tb testing.TB, addr, to string) dcsync.Sender

// TestReceiverNamed checks that the receiver a sender names is bound: a
// batch signed for another datacenter is refused for good and applies
// nothing, and one that names no receiver is accepted only where the
// receiver does not require a name.
func TestReceiverNamed(t *testing.T, serve Named, sender NamedSender) {
	for _, c := range []struct {
		requireTo bool
		to        string
		accepted  bool
	}{
		{false, "telecom", true}, {false, "", true}, {false, "mobile", false},
		{true, "telecom", true}, {true, "", false}, {true, "mobile", false},
	} {
		store := NewStore()
		s := sender(t, serve(t, store, c.requireTo), c.to)
		reqs, _ := Batch(t, 2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := s.Send(ctx, reqs)
		cancel()
		if c.accepted && (err != nil || store.Count() != 2) {
			t.Errorf("RequireTo %v, To %q: %v, %d applied; want both applied", c.requireTo, c.to, err, store.Count())
		}
		if !c.accepted && (!errors.Is(err, dcsync.ErrUnauthenticated) || !dcsync.IsPermanent(err) || store.Count() != 0) {
			t.Errorf("RequireTo %v, To %q: %v, %d applied; want a permanent ErrUnauthenticated and none", c.requireTo, c.to, err, store.Count())
		}
	}
}
