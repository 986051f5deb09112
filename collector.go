package dcsync

import (
	"context"
	"fmt"
	"time"
)

// Collector receives batches of writes from peers and applies them here.
// Transports call it on the receiving side. It returns nil when every
// request is applied (or was applied before), a *BatchError naming the
// requests that failed when some did, and an error matching
// ErrUnauthenticated or ErrInvalid when the whole batch is rejected, in
// which case nothing of it is applied.
type Collector interface {
	Collect(ctx context.Context, from string, reqs []*Request) error
}

// Collector returns the Syncer's receiving side.
func (s *Syncer) Collector() Collector { return collector{s} }

type collector struct{ s *Syncer }

// Collect authenticates the batch as a whole, then validates, dedupes and
// applies each request on its own, so one bad request fails only itself.
func (c collector) Collect(ctx context.Context, from string, reqs []*Request) error {
	s := c.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.admit(from, reqs); err != nil {
		s.stats.invalid.Add(1)
		return err
	}
	var errs []error
	recs := getRecords()
	defer putRecords(recs)
	for i, req := range reqs {
		var err error
		*recs, err = s.collectOne(ctx, req, *recs)
		if err != nil {
			if errs == nil {
				errs = make([]error, len(reqs))
			}
			errs[i] = err
		}
	}
	s.audit.add(*recs...)
	if errs != nil {
		return &BatchError{Errs: errs}
	}
	return nil
}

// admit checks what makes a whole batch unacceptable: an unknown sender, too
// many requests, a missing request, or a request claiming another origin.
func (s *Syncer) admit(from string, reqs []*Request) error {
	if _, ok := s.peers[from]; !ok {
		return fmt.Errorf("%w: %q is not a peer of %s", ErrUnknownPeer, from, s.dc)
	}
	if len(reqs) > s.limits.MaxBatch {
		return fmt.Errorf("%w: %d requests, limit %d", ErrBatchTooLarge, len(reqs), s.limits.MaxBatch)
	}
	for i, req := range reqs {
		if req == nil {
			return fmt.Errorf("request %d: %w", i, ErrNilRequest)
		}
		if req.Origin != from {
			return fmt.Errorf("%w: request %s has origin %q, sent by %q", ErrForgedOrigin, req.ID, req.Origin, from)
		}
	}
	return nil
}

// collectOne validates, dedupes and applies (or hands off) one request,
// appending its audit records to recs.
func (s *Syncer) collectOne(ctx context.Context, req *Request, recs []Record) ([]Record, error) {
	rec := Record{ID: req.ID, DC: s.dc, Origin: req.Origin, Stage: StageCollect,
		Status: StatusOK, Attempt: 1, Written: req.Time(), Time: time.Now()}
	if err := s.limits.validate(req, true); err != nil {
		s.stats.invalid.Add(1)
		if !validID(req.ID) {
			return recs, err // no trail to log it under
		}
		rec.Status, rec.Error = StatusFailed, err.Error()
		return append(recs, rec), err
	}
	s.clock.Observe(req.Version)
	claim, err := s.dedupe.Claim(ctx, req.ID)
	switch {
	case err != nil:
		err = fmt.Errorf("dcsync: dedupe claim %s: %w", req.ID, err)
		rec.Status, rec.Error = StatusFailed, err.Error()
		return append(recs, rec), err
	case claim == Applied:
		s.stats.duplicates.Add(1)
		return recs, nil
	case claim == InFlight:
		return recs, ErrInFlight
	}
	s.stats.collected.Add(1)
	recs = append(recs, rec)
	if s.handoff != nil {
		if err := s.handoff.Process(ctx, req); err != nil {
			s.release(ctx, req.ID)
			rec.Status, rec.Error = StatusFailed, fmt.Sprintf("handoff: %v", err)
			recs[len(recs)-1] = rec
			return recs, fmt.Errorf("dcsync: hand off %s: %w", req.ID, err)
		}
		s.commit(ctx, req.ID)
		return recs, nil
	}
	apply, err := s.apply(ctx, req)
	if err != nil {
		s.release(ctx, req.ID)
		return append(recs, apply), err
	}
	s.commit(ctx, req.ID)
	return append(recs, apply), nil
}

// Apply applies a collected write through the Processor and records the
// apply stage. The MQ wiring's processor workers call it for writes that
// the Collector handed off; it is safe to call again for the same write.
func (s *Syncer) Apply(ctx context.Context, req *Request) error {
	if err := s.limits.validate(req, true); err != nil {
		return err
	}
	rec, err := s.apply(ctx, req)
	s.audit.add(rec)
	return err
}

func (s *Syncer) apply(ctx context.Context, req *Request) (Record, error) {
	rec := Record{ID: req.ID, DC: s.dc, Origin: req.Origin, Stage: StageApply,
		Status: StatusOK, Attempt: 1, Written: req.Time()}
	err := s.proc.Process(ctx, req)
	rec.Time = time.Now()
	if err != nil {
		s.stats.applyFailed.Add(1)
		rec.Status, rec.Error = StatusFailed, err.Error()
		return rec, fmt.Errorf("dcsync: apply %s: %w", req.ID, err)
	}
	s.stats.applied.Add(1)
	return rec, nil
}

// commit remembers an applied write. A failure is only logged: the write is
// applied, and a redelivery applying it again is what an idempotent
// processor tolerates, so it is not worth failing the write over.
func (s *Syncer) commit(ctx context.Context, id string) {
	if err := s.dedupe.Commit(ctx, id); err != nil {
		s.log.Warn("dcsync: dedupe commit failed", "dc", s.dc, "id", id, "err", err)
	}
}

func (s *Syncer) release(ctx context.Context, id string) {
	if err := s.dedupe.Release(ctx, id); err != nil {
		s.log.Warn("dcsync: dedupe release failed", "dc", s.dc, "id", id, "err", err)
	}
}
