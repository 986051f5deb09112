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
	errs, n := s.collect(ctx, reqs, s.dedupe, nil)
	dups = n
	return batchError(errs)
}

// collectHop is the collect hop of the MQ wirings, package hop's Collect:
// Collect with its requests admitted one by one — a request that is nil or
// claims another origin than from fails alone, and the rest flow on —
// claimed in claims (the Syncer's DedupeStore when nil), and, when next is
// set, handed to next instead of the Processor. It returns each request's
// error.
func (s *Syncer) collectHop(ctx context.Context, from string, reqs []*Request, claims DedupeStore,
	next func(context.Context, []*Request) []error) (errs []error) {
	errs = make([]error, len(reqs))
	dups := 0
	if s.obs != nil {
		ctx = s.obs.CollectStart(ctx, from, reqs)
		defer func() { s.obs.CollectDone(ctx, from, reqs, collectResult(batchError(errs), dups)) }()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fill(errs, ErrClosed)
	}
	if err := s.admitPeer(from); err != nil {
		s.stats.invalid.Add(1)
		return fill(errs, err)
	}
	if claims == nil {
		claims = s.dedupe
	}
	admitted := reqs
	var at []int // admitted[k] is reqs[at[k]], when some were refused
	for i, req := range reqs {
		err := admitRequest(from, i, req)
		if err != nil && at == nil {
			admitted, at = make([]*Request, 0, len(reqs)), make([]int, 0, len(reqs))
			for k := range i {
				admitted, at = append(admitted, reqs[k]), append(at, k)
			}
		}
		switch {
		case err != nil:
			s.stats.invalid.Add(1)
			errs[i] = err
		case at != nil:
			admitted, at = append(admitted, req), append(at, i)
		}
	}
	results, dups := s.collect(ctx, admitted, claims, next)
	for k, err := range results {
		if at != nil {
			k = at[k]
		}
		errs[k] = err
	}
	return errs
}

// batchError returns errs as a *BatchError, or nil when none is set.
func batchError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return &BatchError{Errs: errs}
		}
	}
	return nil
}

// collect validates and claims each of reqs, admitted, in claims, applies
// the claimed ones through the Processor, or hands them to next when it is
// set, commits or releases their claims, and records the batch. It returns
// each request's error, nil when none failed, and how many it dropped as
// duplicates.
func (s *Syncer) collect(ctx context.Context, reqs []*Request, claims DedupeStore,
	next func(context.Context, []*Request) []error) ([]error, int) {
	recs := getRecords()
	defer putRecords(recs)
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(reqs))
		}
		errs[i] = err
	}
	dups := 0
	now := time.Now()
	var claimed []*Request
	var at []int // claimed[k] is reqs[at[k]]
	answers, claimErrs := s.claimAll(ctx, claims, reqs)
	for i, req := range reqs {
		var err error
		if claimErrs != nil {
			err = claimErrs[i]
		}
		switch claim := answers[i]; {
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
	var results []error
	if next != nil {
		stage = StageCollect // the apply stage is the next hop's to record
		results = s.handOff(ctx, next, claimed)
	} else {
		results = s.apply(ctx, claimed)
	}
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
	s.commit(ctx, claims, done)
	s.release(ctx, claims, undone)
	s.audit.add(*recs...)
	if batch && len(claimed) > 0 {
		s.audit.addBatch(Record{DC: s.dc, Origin: claimed[0].Origin, Stage: StageApply, Status: StatusOK, Attempt: 1,
			Time: applied}, claimed)
	}
	return errs, dups
}

// claimAll validates each of reqs, merges its version into the local
// clock, and claims the valid ones in claims — in one call when it is a
// BatchDedupeStore. It returns each request's claim and each one's error,
// nil when none failed; the claim of a request that failed means nothing.
func (s *Syncer) claimAll(ctx context.Context, claims DedupeStore, reqs []*Request) ([]Claim, []error) {
	answers := make([]Claim, len(reqs))
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(reqs))
		}
		errs[i] = err
	}
	for i, req := range reqs {
		if err := s.limits.validate(req, true); err != nil {
			s.stats.invalid.Add(1)
			fail(i, err)
		} else if err := s.observe(req.Version); err != nil {
			fail(i, err)
		}
	}
	if bd, ok := claims.(BatchDedupeStore); ok && errs == nil && len(reqs) > 1 {
		ids := make([]string, len(reqs))
		for i, req := range reqs {
			ids[i] = req.ID
		}
		if err := bd.ClaimBatch(ctx, ids, answers); err != nil {
			for i, req := range reqs {
				fail(i, fmt.Errorf("dcsync: dedupe claim %s: %w", req.ID, err))
			}
		}
		return answers, errs
	}
	for i, req := range reqs {
		if errs != nil && errs[i] != nil {
			continue
		}
		claim, err := claims.Claim(ctx, req.ID)
		if err != nil {
			fail(i, fmt.Errorf("dcsync: dedupe claim %s: %w", req.ID, err))
			continue
		}
		answers[i] = claim
	}
	return answers, errs
}

// observe merges a version from elsewhere into the local clock, so later
// local writes order after it, unless it is further ahead than MaxSkew
// (ErrClockSkew, retryable) or beyond the clock's range (ErrInvalid). Every
// path that takes a version from outside goes through it: the Collector,
// the collect and apply hops (package hop) and so the reconciler's
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

// handOff passes reqs, claimed, to next, the MQ wirings' next hop, and
// returns each one's error.
func (s *Syncer) handOff(ctx context.Context, next func(context.Context, []*Request) []error, reqs []*Request) []error {
	errs := make([]error, len(reqs))
	if len(reqs) == 0 {
		return errs
	}
	var got []error
	err := s.guard(reqs[0].ID, func() error {
		got = next(ctx, reqs)
		if got != nil && len(got) != len(reqs) {
			return fmt.Errorf("%d results for %d requests", len(got), len(reqs))
		}
		return nil
	})
	for i, req := range reqs {
		e := err
		if e == nil && got != nil {
			e = got[i]
		}
		if e != nil {
			errs[i] = fmt.Errorf("dcsync: hand off %s: %w", req.ID, e)
		}
	}
	return errs
}

// apply applies reqs through the Processor, in one call when it takes
// batches, and returns each one's error.
func (s *Syncer) apply(ctx context.Context, reqs []*Request) []error {
	errs := make([]error, len(reqs))
	if len(reqs) == 0 {
		return errs
	}
	if s.obs != nil {
		ctx = s.obs.ApplyStart(ctx, reqs)
		defer func() { s.obs.ApplyDone(ctx, reqs, errs) }()
	}
	if bp, ok := s.proc.(BatchProcessor); ok && len(reqs) > 1 {
		err := s.guard(reqs[0].ID, func() error { return bp.ProcessBatch(ctx, reqs) })
		for i := range reqs {
			errs[i] = resultOf(err, i)
		}
	} else {
		for i, req := range reqs {
			errs[i] = s.guard(req.ID, func() error { return s.proc.Process(ctx, req) })
		}
	}
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			errs[i] = fmt.Errorf("dcsync: apply %s: %w", reqs[i].ID, err)
		}
	}
	s.stats.applied.Add(uint64(len(reqs) - failed))
	s.stats.applyFailed.Add(uint64(failed))
	return errs
}

// admit checks what makes a whole batch unacceptable: an unknown sender, too
// many requests, a missing request, or a request claiming another origin.
func (s *Syncer) admit(from string, reqs []*Request) error {
	if err := s.admitPeer(from); err != nil {
		return err
	}
	if len(reqs) > s.limits.MaxBatch {
		return fmt.Errorf("%w: %d requests, limit %d", ErrBatchTooLarge, len(reqs), s.limits.MaxBatch)
	}
	for i, req := range reqs {
		if err := admitRequest(from, i, req); err != nil {
			return err
		}
	}
	return nil
}

// admitPeer refuses a sender that is not a peer.
func (s *Syncer) admitPeer(from string) error {
	if _, ok := s.peers[from]; !ok {
		return fmt.Errorf("%w: %q is not a peer of %s", ErrUnknownPeer, from, s.dc)
	}
	return nil
}

// admitRequest refuses request i of a batch sent by from when it is
// missing or claims another origin.
func admitRequest(from string, i int, req *Request) error {
	if req == nil {
		return fmt.Errorf("request %d: %w", i, ErrNilRequest)
	}
	if req.Origin != from {
		return fmt.Errorf("%w: request %s has origin %q, sent by %q", ErrForgedOrigin, req.ID, req.Origin, from)
	}
	return nil
}

// applyBatch is the local and apply hops of the MQ wirings, package hop's
// Apply: it validates reqs and applies them through the Processor, in one
// call when it is a BatchProcessor, and returns each one's error. A write
// that originated here, written ahead through a WriteAheadReship, is
// recorded as processed here, with the request for the reconciler, as
// Write records it; another write gets an apply record.
func (s *Syncer) applyBatch(ctx context.Context, reqs []*Request) []error {
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
	results := s.apply(ctx, valid)
	recs := getRecords()
	defer putRecords(recs)
	now := time.Now()
	for k, req := range valid {
		errs[at[k]] = results[k]
		if req.Origin == s.dc { // written ahead
			*recs = append(*recs, s.processed(req, now, results[k]))
			continue
		}
		*recs = append(*recs, s.record(req, StageApply, now, results[k]))
	}
	s.audit.add(*recs...)
	return errs
}

// processed returns the process record of req, written here and applied
// by applyBatch, and counts it as Write would rather than as a collected
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
func (s *Syncer) commit(ctx context.Context, claims DedupeStore, ids []string) {
	if bd, ok := claims.(BatchDedupeStore); ok && len(ids) > 1 {
		if err := bd.CommitBatch(ctx, ids); err != nil {
			s.log.Warn("dcsync: dedupe commit failed", "dc", s.dc, "ids", len(ids), "first", ids[0], "err", err)
		}
		return
	}
	for _, id := range ids {
		if err := claims.Commit(ctx, id); err != nil {
			s.log.Warn("dcsync: dedupe commit failed", "dc", s.dc, "id", id, "err", err)
		}
	}
}

// release gives up the claims of writes whose apply failed, so a retry
// may claim them.
func (s *Syncer) release(ctx context.Context, claims DedupeStore, ids []string) {
	for _, id := range ids {
		if err := claims.Release(ctx, id); err != nil {
			s.log.Warn("dcsync: dedupe release failed", "dc", s.dc, "id", id, "err", err)
		}
	}
}
