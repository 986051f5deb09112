package dcsync

import (
	"context"
	"errors"
	"fmt"
)

// UndeliveredError is returned by Shutdown when its context ended before
// every queued delivery was made. The writes left are in the Journal, when
// one is configured, and are shipped again when the Syncer next starts;
// without one, a Reconciler delivers them from their trails.
type UndeliveredError struct {
	// Deliveries is how many deliveries (write × peer) were still queued
	// or under way when the context ended.
	Deliveries int
	// Err is the context's error.
	Err error
}

// Error says how many deliveries were left.
func (e *UndeliveredError) Error() string {
	return fmt.Sprintf("dcsync: shutdown: %d deliveries left to the journal or the reconciler: %v", e.Deliveries, e.Err)
}

// Unwrap returns the context's error.
func (e *UndeliveredError) Unwrap() error { return e.Err }

// Shutdown stops taking writes and batches, sends what is queued for the
// peers until ctx ends, flushes the audit queue, and closes the Senders.
// When ctx ends first, it stops the sends under way and returns an
// *UndeliveredError that counts the deliveries left; what the audit queue
// still held is then lost with the process (the journal, when configured,
// still holds every write not acknowledged). Writes waiting for peers
// (WaitAll, WaitQuorum) return an error matching ErrNotReplicated.
//
// It does not close the AuditLog, the Processor, the Reship or the Journal
// given in Config: they belong to the caller, who closes them after. Only
// the first call of Shutdown or Close does anything.
func (s *Syncer) Shutdown(ctx context.Context) error {
	err := ErrClosed
	s.closeOnce.Do(func() { err = s.shutdown(ctx) })
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

func (s *Syncer) shutdown(ctx context.Context) error {
	close(s.closing) // releases writers waiting for queue room or peers
	if s.stopRecovery != nil {
		s.stopRecovery()
	}
	locked := background(func() {
		s.mu.Lock() // waits for the Writes and Collects under way
		s.closed = true
		s.mu.Unlock()
	})
	drained, left := s.queues == nil, 0
	select {
	case <-locked:
		if s.recovered != nil {
			<-s.recovered // quick: their context is cancelled
			<-s.redriving
		}
		if s.queues != nil {
			left = s.queues.close(ctx)
			drained = left == 0
		}
	case <-ctx.Done():
		if s.queues != nil {
			left = s.queues.held()
		}
		// A Processor call outlived ctx; the queues close once it returns.
		go func() {
			<-locked
			if s.queues != nil {
				s.queues.close(ctx)
			}
		}()
	}
	var errs []error
	select {
	case <-background(s.audit.close):
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("dcsync: shutdown: audit records not all appended: %w", ctx.Err()))
	}
	for name, sender := range s.peers {
		if err := sender.Close(); err != nil {
			errs = append(errs, fmt.Errorf("dcsync: close sender %s: %w", name, err))
		}
	}
	if !drained {
		errs = append(errs, &UndeliveredError{Deliveries: left, Err: ctx.Err()})
	}
	return errors.Join(errs...)
}

// background runs f in a goroutine of its own and returns a channel closed
// when f has returned.
func background(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// abandon stops what New started, for a New that fails.
func (s *Syncer) abandon() {
	close(s.closing)
	if s.queues != nil {
		s.queues.close(context.Background())
	}
	s.audit.close()
}

// journalAcked marks in the journal the writes peer acknowledged.
func (s *Syncer) journalAcked(peer string, reqs []*Request, errs []error, failed int) {
	if s.journal == nil {
		return
	}
	ids := make([]string, 0, len(reqs)-failed)
	for i, req := range reqs {
		if errs[i] == nil {
			ids = append(ids, req.ID)
		}
	}
	if len(ids) > 0 {
		s.journal.Acked(peer, ids)
	}
}
