package dcsync

import (
	"errors"
	"fmt"
)

// WriteOption changes how one Write behaves.
type WriteOption func(*writeOptions)

type writeOptions struct {
	all    bool
	quorum int
}

// WaitAll makes Write return only once every peer has acknowledged the write
// (over the RPC and memory transports: applied it), or the context ends.
// For writes that must not be stale anywhere.
func WaitAll() WriteOption { return func(o *writeOptions) { o.all = true } }

// WaitQuorum makes Write return once n peers have acknowledged the write,
// or the context ends. n larger than the number of peers means all.
func WaitQuorum(n int) WriteOption { return func(o *writeOptions) { o.quorum = n } }

// quorum returns how many of peers must acknowledge; 0 means do not wait.
func (o writeOptions) need(peers int) int {
	if o.all || o.quorum > peers {
		return peers
	}
	return max(o.quorum, 0)
}

// waiter collects peer acknowledgements of one write.
type waiter struct {
	need, peers int
	acks, fails int
	errs        []error
	done        chan error // buffered; receives one result
}

// report counts the outcome of delivery to peer and completes the waiter
// once the quorum is reached or can no longer be.
func (w *waiter) report(peer string, err error) {
	if w.acks >= w.need || w.fails > w.peers-w.need {
		return // already decided
	}
	if err == nil {
		w.acks++
		if w.acks == w.need {
			w.done <- nil
		}
		return
	}
	w.fails++
	w.errs = append(w.errs, fmt.Errorf("peer %s: %w", peer, err))
	if w.fails > w.peers-w.need {
		w.done <- fmt.Errorf("%w: %w", ErrNotReplicated, errors.Join(w.errs...))
	}
}

// await registers a waiter for id needing need acknowledgements; it returns
// nil when need is 0.
func (s *Syncer) await(id string, need int) *waiter {
	if need == 0 {
		return nil
	}
	w := &waiter{need: need, peers: len(s.peers), done: make(chan error, 1)}
	s.waitMu.Lock()
	s.waiters[id] = w
	s.waitMu.Unlock()
	s.waiting.Add(1)
	return w
}

func (s *Syncer) unwait(id string) {
	s.waitMu.Lock()
	delete(s.waiters, id)
	s.waitMu.Unlock()
	s.waiting.Add(-1)
}
