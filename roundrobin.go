package dcsync

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin returns a Sender that spreads batches over senders, each
// reaching one instance of the same peer datacenter (one receiving address
// per instance), taking them in turn from a random one (so that many
// senders do not all start on the same instance). A batch whose Send fails as a whole
// with an error worth retrying (not IsPermanent, not a *BatchError, ctx
// still live) is tried on the next sender at once, each sender once at
// most, so an instance that is down costs its peers no retry wait; what
// fails on all of them is left to the caller's retries. The receiving
// instances must share their datacenter's DedupeStore, as they do anyway:
// a batch tried again may have been applied by the instance that failed to
// answer.
//
// Use it when the peer's instances are not behind a load balancer; behind
// one, a single Sender to its address does the spreading.
//
//	peer := dcsync.RoundRobin(senderTo(addr1), senderTo(addr2), senderTo(addr3))
//	s, err := dcsync.New(dcsync.Config{Peers: map[string]dcsync.Sender{"telecom": peer}, ...})
//
// It panics when senders is empty. Close closes every sender.
func RoundRobin(senders ...Sender) Sender {
	if len(senders) == 0 {
		panic("dcsync: RoundRobin of no sender")
	}
	r := &roundRobin{senders: senders}
	r.next.Store(rand.Uint64())
	return r
}

type roundRobin struct {
	senders []Sender
	next    atomic.Uint64
}

func (r *roundRobin) Send(ctx context.Context, reqs []*Request) error {
	first := r.next.Add(1) - 1
	var err error
	for i := range uint64(len(r.senders)) {
		err = r.senders[(first+i)%uint64(len(r.senders))].Send(ctx, reqs)
		var be *BatchError
		if err == nil || IsPermanent(err) || errors.As(err, &be) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (r *roundRobin) Close() error {
	errs := make([]error, len(r.senders))
	for i, s := range r.senders {
		errs[i] = s.Close()
	}
	return errors.Join(errs...)
}
