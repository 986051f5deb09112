package dcsync

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dcsync/dcsync/internal/hlc"
)

// Collector receives batches of writes from peers and applies them here.
// Transports call it on the receiving side. It returns nil when every
// request is applied (or was applied before), a *BatchError naming the
// requests that failed when some did, and an error matching
// ErrUnauthenticated or ErrInvalid when the whole batch is rejected, in
// which case nothing of it is applied. The requests (not the slice) may be
// kept after Collect returns, for the audit log: do not modify them.
type Collector interface {
	Collect(ctx context.Context, from string, reqs []*Request) error
}

// Collector returns the Syncer's receiving side.
func (s *Syncer) Collector() Collector { return collector{s} }

type collector struct{ s *Syncer }

// DC names the datacenter collecting: the transports' servers refuse
// batches signed for another.
func (c collector) DC() string { return c.s.dc }

// Collect authenticates the batch as a whole, then validates and dedupes
// each request on its own, so one bad request fails only itself, and
// applies the accepted ones — in one call when the Processor is a
// BatchProcessor.
func (c collector) Collect(ctx context.Context, from string, reqs []*Request) (err error) {
	s := c.s
	dups := 0
	if s.obs != nil {
		ctx = s.obs.CollectStart(ctx, from, reqs)
		defer func() { s.obs.CollectDone(ctx, from, reqs, collectResult(err, dups)) }()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.admit(from, reqs); err != nil {
		s.stats.invalid.Add(1)
		return err
	}
	recs := getRecords()
	defer putRecords(recs)
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(reqs))
		}
		errs[i] = err
	}
	now := time.Now()
	var claimed []*Request
	var at []int // claimed[k] is reqs[at[k]]
	for i, req := range reqs {
		claim, err := s.claim(ctx, req)
		switch {
		case err != nil:
			fail(i, err)
			if validID(req.ID) { // else there is no trail to log it under
				*recs = append(*recs, s.record(req, StageCollect, now, err))
			}
		case claim == Applied:
			s.stats.duplicates.Add(1)
			dups++
		case claim == InFlight:
			fail(i, ErrInFlight)
		default:
			s.stats.collected.Add(1)
			claimed, at = append(claimed, req), append(at, i)
		}
	}
	var done, undone []string
	stage := StageApply
	if s.handoff != nil {
		stage = StageCollect // the apply stage is the handoff's workers' to record
	}
	results := s.process(ctx, claimed)
	applied := time.Now()
	// When every apply succeeded, their records are one batch item.
	batch := stage == StageApply && !slices.ContainsFunc(results, func(err error) bool { return err != nil })
	for k, req := range claimed {
		err := results[k]
		// An apply record says the write was collected too; a handoff's
		// collect record is all this stage logs when it succeeds.
		if stage == StageCollect {
			*recs = append(*recs, s.record(req, StageCollect, now, nil))
		}
		if err != nil || stage == StageApply && !batch {
			*recs = append(*recs, s.record(req, stage, applied, err))
		}
		if err != nil {
			fail(at[k], err)
			undone = append(undone, req.ID)
		} else {
			done = append(done, req.ID)
		}
	}
	s.commit(ctx, done)
	s.release(ctx, undone)
	s.audit.add(*recs...)
	if batch {
		s.audit.addBatch(Record{DC: s.dc, Origin: from, Stage: StageApply, Status: StatusOK, Attempt: 1,
			Time: applied}, claimed)
	}
	if errs != nil {
		return &BatchError{Errs: errs}
	}
	return nil
}

// claim validates req, merges its version into the local clock, and claims
// it in the dedupe store.
func (s *Syncer) claim(ctx context.Context, req *Request) (Claim, error) {
	if err := s.limits.validate(req, true); err != nil {
		s.stats.invalid.Add(1)
		return 0, err
	}
	if err := s.observe(req.Version); err != nil {
		return 0, err
	}
	claim, err := s.dedupe.Claim(ctx, req.ID)
	if err != nil {
		return 0, fmt.Errorf("dcsync: dedupe claim %s: %w", req.ID, err)
	}
	return claim, nil
}

// observe merges a version from elsewhere into the local clock, so later
// local writes order after it, unless it is further ahead than MaxSkew
// (ErrClockSkew, retryable) or beyond the clock's range (ErrInvalid). Every
// path that takes a version from outside goes through it: the Collector,
// ApplyBatch (the MQ wiring's apply stream) and so the reconciler's
// re-sends, which a peer collects.
func (s *Syncer) observe(version uint64) error {
	skew := s.maxSkew
	if skew < 0 {
		skew = time.Duration(math.MaxInt64)
	}
	err := s.clock.ObserveWithin(version, skew)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hlc.ErrBeyond):
		s.stats.invalid.Add(1)
		return fmt.Errorf("%w: version %d: %w", ErrInvalid, version, err)
	}
	s.stats.skewed.Add(1)
	s.refusal("write refused: version ahead of the local clock", "version", version, "err", err)
	return fmt.Errorf("%w: %w", ErrClockSkew, err)
}

// Refused counts a batch a transport refused as a whole before handing it
// to the Collector, by the error it was refused with, in Stats. Transports
// call it through the Collector; it logs nothing (they do).
func (c collector) Refused(err error) {
	st := &c.s.stats
	switch {
	case err == nil:
	case errors.Is(err, ErrUnauthenticated):
		st.refusedAuth.Add(1)
	case errors.Is(err, ErrBatchTooLarge), errors.Is(err, ErrTooLarge):
		st.refusedLarge.Add(1)
	case errors.Is(err, ErrInvalid):
		st.refusedInvalid.Add(1)
	}
}

// refusal logs a refused write, at most once a second: a peer sending
// nothing but refused writes must not flood the log.
func (s *Syncer) refusal(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.refusalLogged.Load()
	if now-last < int64(time.Second) || !s.refusalLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("dcsync: "+msg, append([]any{"dc", s.dc}, args...)...)
}

// Observe merges a version read from this datacenter's state into the
// version clock, so that a write made after reading it — perhaps in a
// process that has collected nothing yet — orders after it.
func (s *Syncer) Observe(version uint64) { s.clock.Observe(version) }

// process applies (or hands off) reqs and returns each one's error.
func (s *Syncer) process(ctx context.Context, reqs []*Request) []error {
	if s.handoff != nil {
		return s.apply(ctx, s.handoff, false, reqs)
	}
	return s.apply(ctx, s.proc, true, reqs)
}

// apply passes reqs to target, in one call when it takes batches, and
// returns each one's error. applying says target is the Processor (not
// the handoff), whose outcomes the stats count.
func (s *Syncer) apply(ctx context.Context, target Processor, applying bool, reqs []*Request) []error {
	errs := make([]error, len(reqs))
	if len(reqs) == 0 {
		return errs
	}
	if applying && s.obs != nil {
		ctx = s.obs.ApplyStart(ctx, reqs)
		defer func() { s.obs.ApplyDone(ctx, reqs, errs) }()
	}
	if bp, ok := target.(BatchProcessor); ok && len(reqs) > 1 {
		err := s.guard(reqs[0].ID, func() error { return bp.ProcessBatch(ctx, reqs) })
		for i := range reqs {
			errs[i] = resultOf(err, i)
		}
	} else {
		for i, req := range reqs {
			errs[i] = s.guard(req.ID, func() error { return target.Process(ctx, req) })
		}
	}
	verb := "hand off"
	if applying {
		verb = "apply"
	}
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			errs[i] = fmt.Errorf("dcsync: %s %s: %w", verb, reqs[i].ID, err)
		}
	}
	if applying {
		s.stats.applied.Add(uint64(len(reqs) - failed))
		s.stats.applyFailed.Add(uint64(failed))
	}
	return errs
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

// Apply applies a collected write through the Processor and records the
// apply stage. The MQ wiring's processor workers call it for writes that
// the Collector handed off; it is safe to call again for the same write.
func (s *Syncer) Apply(ctx context.Context, req *Request) error {
	if err := s.ApplyBatch(ctx, []*Request{req}); err != nil {
		return resultOf(err, 0)
	}
	return nil
}

// ApplyBatch is Apply for a batch, in one call when the Processor is a
// BatchProcessor. A write that originated here, written ahead through a
// Reship that applies (Config.ReshipApplies), is recorded as processed
// here, with the request for the reconciler, as Write records it. It returns nil, a *BatchError naming the writes that
// failed, or an error for the whole batch.
func (s *Syncer) ApplyBatch(ctx context.Context, reqs []*Request) error {
	errs := make([]error, len(reqs))
	valid := make([]*Request, 0, len(reqs))
	at := make([]int, 0, len(reqs))
	for i, req := range reqs {
		if err := s.limits.validate(req, true); err != nil {
			errs[i] = err
			continue
		}
		if err := s.observe(req.Version); err != nil {
			errs[i] = err
			continue
		}
		valid, at = append(valid, req), append(at, i)
	}
	results := s.apply(ctx, s.proc, true, valid)
	recs := getRecords()
	defer putRecords(recs)
	now := time.Now()
	for k, req := range valid {
		errs[at[k]] = results[k]
		if req.Origin == s.dc { // written ahead (Config.ReshipApplies)
			*recs = append(*recs, s.processed(req, now, results[k]))
			continue
		}
		*recs = append(*recs, s.record(req, StageApply, now, results[k]))
	}
	s.audit.add(*recs...)
	for _, err := range errs {
		if err != nil {
			return &BatchError{Errs: errs}
		}
	}
	return nil
}

// processed returns the process record of req, written here and applied
// by ApplyBatch, and counts it as Write would rather than as a collected
// write (apply counted it so: ^0 takes one back).
func (s *Syncer) processed(req *Request, at time.Time, err error) Record {
	r := s.record(req, StageProcess, at, err)
	if err != nil {
		s.stats.applyFailed.Add(^uint64(0))
		s.stats.rejected.Add(1)
		return r
	}
	s.stats.applied.Add(^uint64(0))
	s.stats.written.Add(1)
	r.Request = req
	return r
}

// record returns the record of stage for req here, failed when err is set.
func (s *Syncer) record(req *Request, stage Stage, at time.Time, err error) Record {
	r := Record{ID: req.ID, DC: s.dc, Origin: req.Origin, Stage: stage, Status: StatusOK,
		Attempt: 1, Written: req.Time(), Time: at}
	if err != nil {
		r.Status, r.Error = StatusFailed, err.Error()
	}
	return r
}

// commit remembers an applied write. A failure is only logged: the write is
// applied, and a redelivery applying it again is what an idempotent
// processor tolerates, so it is not worth failing the write over.
func (s *Syncer) commit(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := s.dedupe.Commit(ctx, id); err != nil {
			s.log.Warn("dcsync: dedupe commit failed", "dc", s.dc, "id", id, "err", err)
		}
	}
}

// release gives up the claims of writes whose apply failed, so a retry
// may claim them.
func (s *Syncer) release(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := s.dedupe.Release(ctx, id); err != nil {
			s.log.Warn("dcsync: dedupe release failed", "dc", s.dc, "id", id, "err", err)
		}
	}
}
