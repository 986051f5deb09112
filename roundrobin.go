package dcsync

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// roundRobinCooldown is how long a RoundRobin leaves out a sender whose
// batch failed as a whole.
const roundRobinCooldown = time.Second

// RoundRobin returns a Sender that spreads batches over senders, each
// reaching one instance of the same peer datacenter (one receiving address
// per instance), taking them in turn, from a random one so that the
// instances of the sending datacenter do not all start on the same one.
//
// A batch whose Send fails as a whole with an error worth retrying (not
// IsPermanent, not a *BatchError, ctx still live) is tried on the next
// sender at once, so an instance that is down costs its peers no retry
// wait; that sender is then left out for a second, so the batches
// spread evenly over the others and an instance that does not answer at
// all (a timeout per batch) costs one batch a cooldown. While every sender
// is left out, all are tried. What fails everywhere is left to the
// caller's retries. The receiving instances must share their datacenter's
// DedupeStore, as they do anyway: a batch tried again may have been
// applied by the instance that failed to answer.
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
	r := &roundRobin{senders: senders, down: make([]atomic.Int64, len(senders)), cooldown: roundRobinCooldown}
	r.next.Store(rand.Uint64())
	return r
}

type roundRobin struct {
	senders  []Sender
	down     []atomic.Int64 // per sender, until when it is left out (Unix ns)
	cooldown time.Duration
	next     atomic.Uint64
}

func (r *roundRobin) Send(ctx context.Context, reqs []*Request) error {
	n := len(r.senders)
	now := time.Now().UnixNano()
	up := 0
	for i := range r.down {
		if r.down[i].Load() <= now {
			up++
		}
	}
	// The turn's sender among those up, or among all when none is.
	turn := r.next.Add(1) - 1
	first := int(turn % uint64(n))
	if up > 0 && up < n {
		j := int(turn % uint64(up))
		for i := range n {
			if r.down[i].Load() <= now {
				if j == 0 {
					first = i
					break
				}
				j--
			}
		}
	}
	var err error
	for k := range n {
		i := (first + k) % n
		if up > 0 && r.down[i].Load() > now {
			continue
		}
		err = r.senders[i].Send(ctx, reqs)
		var be *BatchError
		if err == nil || IsPermanent(err) || errors.As(err, &be) || ctx.Err() != nil {
			if err == nil && up == 0 {
				r.down[i].Store(0) // back
			}
			return err
		}
		r.down[i].Store(time.Now().Add(r.cooldown).UnixNano())
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
