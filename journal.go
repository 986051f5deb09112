package dcsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Journal is a durable write-ahead log of the writes that enter here, for
// the RPC path: Write appends each write to it before applying it, and a
// write stays in it until it is rejected, or applied and acknowledged by
// every peer. When a Syncer starts over a Journal, every write in it that
// was not applied is applied, and every write some peer did not
// acknowledge is shipped again. The implementation is package journal;
// its documentation says what each fsync policy survives.
//
// The Syncer calls Recover once, from New, before any other method. It
// does not close the Journal: close it after the Syncer.
type Journal interface {
	// Recover returns the writes that are not done for peers: not applied
	// or rejected, or not acknowledged by every one of peers.
	Recover(peers []string) ([]JournalEntry, error)
	// Append makes req durable and returns once it is; an error means it
	// is not in the journal.
	Append(req *Request) error
	// Applied marks a write as applied here; it need not wait.
	Applied(id string)
	// Rejected marks a write as rejected, so it is never applied on
	// recovery; it returns once the mark is durable.
	Rejected(id string) error
	// Acked marks writes as acknowledged by peer; it need not wait.
	Acked(peer string, ids []string)
	// Backlog returns how many writes peer has not acknowledged and when
	// the oldest of them was written.
	Backlog(peer string) (n int, oldest time.Time)
	// Unacked calls fn, oldest first, with each write applied here before
	// before that some peer has not acknowledged, and those peers, until
	// fn returns an error, which it returns.
	Unacked(before time.Time, fn func(req *Request, missing []string) error) error
}

// JournalEntry is a write the journal holds that is not done.
type JournalEntry struct {
	Request *Request
	Applied bool     // applied here: only shipping remains
	Acked   []string // the peers that acknowledged it
}

// Recovery counts what a Syncer did with the writes its Journal held when
// it started.
type Recovery struct {
	Pending   int // writes the journal held that were not done
	Applied   int // of them, applied now: the process had died before
	Rejected  int // of them, whose apply failed now: recorded rejected
	Reshipped int // writes queued again for the peers
}

// startRecovery observes the versions of the journal's pending writes, so
// that new writes order after them, and re-drives them in the background;
// then, every redrive, it re-drives the writes a peer has not acknowledged
// for that long.
func (s *Syncer) startRecovery(entries []JournalEntry, redrive time.Duration) {
	for _, e := range entries {
		s.clock.Observe(e.Request.Version)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopRecovery = cancel
	s.recovered = make(chan struct{})
	s.redriving = make(chan struct{})
	go func() {
		defer close(s.redriving)
		<-s.recovered
		if redrive <= 0 {
			return
		}
		t := time.NewTicker(redrive)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n, err := s.Redrive(ctx, redrive); err != nil && ctx.Err() == nil {
				s.log.Error("dcsync: journal redrive failed", "dc", s.dc, "queued", n, "err", err)
			} else if n > 0 {
				s.log.Warn("dcsync: writes not acknowledged, queued again", "dc", s.dc, "queued", n, "after", redrive)
			}
		}
	}()
	go func() {
		defer close(s.recovered)
		s.recovery, s.recoveryErr = s.recover(ctx, entries)
		left := s.recovery.Pending - s.recovery.Reshipped - s.recovery.Rejected
		switch {
		case s.recoveryErr != nil && ctx.Err() != nil:
			s.log.Warn("dcsync: journal recovery cut short by shutdown; the journal keeps the rest",
				"dc", s.dc, "left", left)
		case s.recoveryErr != nil:
			s.log.Error("dcsync: journal recovery stopped", "dc", s.dc, "err", s.recoveryErr, "left", left)
		case s.recovery.Pending > 0:
			s.log.Info("dcsync: journal recovered", "dc", s.dc, "pending", s.recovery.Pending,
				"applied", s.recovery.Applied, "rejected", s.recovery.Rejected, "reshipped", s.recovery.Reshipped)
		}
	}()
}

// recover applies the entries not applied and ships them all again, as
// Write would have. A write it could not queue stays in the journal for
// the redrive; it stops only when the Syncer closes, and returns the first
// error.
func (s *Syncer) recover(ctx context.Context, entries []JournalEntry) (Recovery, error) {
	rep := Recovery{Pending: len(entries)}
	var first error
	for _, e := range entries {
		err := s.redrive(ctx, e, &rep)
		if err != nil && (ctx.Err() != nil || errors.Is(err, ErrClosed)) {
			return rep, err
		}
		if first == nil {
			first = err
		}
	}
	return rep, first
}

// redrive applies one journaled write if it was not, and queues it for the
// peers that did not acknowledge it.
func (s *Syncer) redrive(ctx context.Context, e JournalEntry, rep *Recovery) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	req := e.Request
	rec := Record{ID: req.ID, DC: s.dc, Origin: s.dc, Stage: StageProcess, Status: StatusOK,
		Attempt: 1, Written: req.Time(), Time: time.Now()}
	if !e.Applied {
		if err := s.processLocal(ctx, req); err != nil {
			rep.Rejected++
			s.stats.rejected.Add(1)
			rec.Status, rec.Error = StatusFailed, err.Error()
			s.audit.add(rec)
			if jerr := s.journal.Rejected(req.ID); jerr != nil {
				return fmt.Errorf("dcsync: journal: %w", jerr)
			}
			return nil
		}
		rep.Applied++
		s.stats.written.Add(1)
		s.journal.Applied(req.ID)
	}
	// The process record may have died with the process: the reconciler
	// re-sends from it.
	rec.Request = req
	s.audit.add(rec)
	if err := s.reship.Reship(ctx, req); err != nil {
		return fmt.Errorf("dcsync: reship %s: %w", req.ID, err)
	}
	s.shipped(req)
	rep.Reshipped++
	return nil
}

// shipped marks req as acknowledged by every peer in the journal when a
// Reship of the caller's took it: that Reship is durable on its own (the
// MQ wiring's outbound stream). The built-in queues mark each peer's
// acknowledgement as it comes.
func (s *Syncer) shipped(req *Request) {
	if s.journal == nil || s.queues != nil {
		return
	}
	ids := []string{req.ID}
	for name := range s.peers {
		s.journal.Acked(name, ids)
	}
}

// WaitRecovered waits until the Syncer has re-driven the writes its
// Journal held when New opened it, or ctx ends, and returns what it did.
// Without a Journal it returns at once. New starts the recovery in the
// background; writes are taken meanwhile.
func (s *Syncer) WaitRecovered(ctx context.Context) (Recovery, error) {
	if s.recovered == nil {
		return Recovery{}, nil
	}
	select {
	case <-s.recovered:
		return s.recovery, s.recoveryErr
	case <-ctx.Done():
		return Recovery{}, fmt.Errorf("dcsync: waiting for recovery: %w", ctx.Err())
	}
}

// Redrive queues again, for the peers, every journaled write applied here
// more than olderThan ago that some peer has not acknowledged: writes the
// senders gave up on while a peer was down, or that a Reconciler delivered
// without the journal knowing. It returns how many it queued. A Syncer
// with a Journal calls it every Config.JournalRedrive; without a Journal
// it does nothing.
func (s *Syncer) Redrive(ctx context.Context, olderThan time.Duration) (int, error) {
	if s.journal == nil {
		return 0, nil
	}
	n := 0
	err := s.journal.Unacked(time.Now().Add(-olderThan), func(req *Request, _ []string) error {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.closed {
			return ErrClosed
		}
		if err := s.reship.Reship(ctx, req); err != nil {
			return fmt.Errorf("dcsync: redrive %s: %w", req.ID, err)
		}
		s.shipped(req)
		n++
		return nil
	})
	return n, err
}

// peerNames returns the names of the peers, sorted.
func peerNames(peers map[string]Sender) []string {
	names := make([]string, 0, len(peers))
	for name := range peers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
