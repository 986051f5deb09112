package kafka

import (
	"context"
	"errors"

	"github.com/dcsync/dcsync"
)

// core is all the workers need of dcsync, and this file is the only one
// that calls the Syncer: a later batch-native core API replaces these
// three methods and Node.Wire, and nothing else.
//
// The hooks used today: Syncer.Forward (reship hop), Syncer.Collector's
// Collect with Config.Handoff (collect hop), Syncer.ApplyBatch (the local
// and apply hops), and Config.Reship with Config.ReshipApplies (Write).
type core interface {
	// forward delivers reqs, written here, to peer's inbound topic.
	forward(ctx context.Context, peer string, reqs []*dcsync.Request) []error
	// collect authenticates, validates and dedupes reqs sent by from, and
	// hands the accepted ones to the apply topic.
	collect(ctx context.Context, from string, reqs []*dcsync.Request) []error
	// apply applies reqs here through the Processor.
	apply(ctx context.Context, reqs []*dcsync.Request) []error
}

// syncerCore is the core over today's Syncer.
type syncerCore struct {
	s *dcsync.Syncer
	c dcsync.Collector
}

func newCore(s *dcsync.Syncer) core { return syncerCore{s: s, c: s.Collector()} }

func (c syncerCore) forward(ctx context.Context, peer string, reqs []*dcsync.Request) []error {
	return split(c.s.Forward(ctx, peer, reqs), len(reqs))
}

func (c syncerCore) collect(ctx context.Context, from string, reqs []*dcsync.Request) []error {
	err := c.c.Collect(ctx, from, reqs)
	var be *dcsync.BatchError
	if len(reqs) > 1 && dcsync.IsPermanent(err) && !errors.As(err, &be) {
		// One bad request rejects a whole batch (a forged origin); collect
		// one by one to find it, and let the rest flow on.
		errs := make([]error, len(reqs))
		for i, req := range reqs {
			errs[i] = split(c.c.Collect(ctx, from, []*dcsync.Request{req}), 1)[0]
		}
		return errs
	}
	return split(err, len(reqs))
}

func (c syncerCore) apply(ctx context.Context, reqs []*dcsync.Request) []error {
	return split(c.s.ApplyBatch(ctx, reqs), len(reqs))
}

// split returns the error of each of n requests of a batch whose delivery
// returned err: all nil, the BatchError's own, or err for each.
func split(err error, n int) []error {
	errs := make([]error, n)
	var be *dcsync.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be) && len(be.Errs) == n:
		copy(errs, be.Errs)
	default:
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}
