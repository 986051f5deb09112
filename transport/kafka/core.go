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
	forward(ctx context.Context, peer string, reqs []*dcsync.Request) error
	// collect authenticates, validates and dedupes reqs sent by from, and
	// hands the accepted ones to the apply topic.
	collect(ctx context.Context, from string, reqs []*dcsync.Request) error
	// apply applies reqs here through the Processor.
	apply(ctx context.Context, reqs []*dcsync.Request) error
}

// Each method returns nil, a *dcsync.BatchError with each request's error,
// or one error for the whole batch.

// syncerCore is the core over today's Syncer.
type syncerCore struct {
	s *dcsync.Syncer
	c dcsync.Collector
}

func newCore(s *dcsync.Syncer) core { return syncerCore{s: s, c: s.Collector()} }

func (c syncerCore) forward(ctx context.Context, peer string, reqs []*dcsync.Request) error {
	return c.s.Forward(ctx, peer, reqs)
}

func (c syncerCore) collect(ctx context.Context, from string, reqs []*dcsync.Request) error {
	err := c.c.Collect(ctx, from, reqs)
	var be *dcsync.BatchError
	if len(reqs) < 2 || !dcsync.IsPermanent(err) || errors.As(err, &be) {
		return err
	}
	// One bad request rejects a whole batch (a forged origin); collect one
	// by one to find it, and let the rest flow on.
	errs := make([]error, len(reqs))
	for i, req := range reqs {
		errs[i] = c.c.Collect(ctx, from, []*dcsync.Request{req})
	}
	return &dcsync.BatchError{Errs: errs}
}

func (c syncerCore) apply(ctx context.Context, reqs []*dcsync.Request) error {
	return c.s.ApplyBatch(ctx, reqs)
}
