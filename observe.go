package dcsync

import (
	"context"
	"errors"
)

// Observer is told what a Syncer and a Reconciler do, stage by stage, so
// that metrics, traces, health checks and status pages can follow them
// without the core knowing about any of those systems. Set it in
// Config.Observer and ReconcilerConfig.Observer; nil, the default, costs
// the write path one comparison.
//
// Each stage has a Start and a Done call. Start may return a context
// derived from ctx (carrying a span, say); the stage runs under it and Done
// receives it. The requests passed belong to the Syncer: an Observer may read
// them, and WriteStart alone may add to req.Header (which travels with the
// write to every peer), but none may keep them past the call. Calls come
// from many goroutines at once and must not block.
//
// Embed NopObserver to implement only some of the calls. The packages
// monitor, metrics/prom and tracing implement Observer; Observers combines
// several.
type Observer interface {
	// WriteStart is called by Write for a valid write, once its ID, Origin
	// and Version are set and before the Processor applies it.
	WriteStart(ctx context.Context, req *Request) context.Context
	// WriteDone is called when Write has applied req here and queued it for
	// the peers (err nil), or failed to; a write rejected by the Processor
	// has an error matching nothing of this package.
	WriteDone(ctx context.Context, req *Request, err error)
	// SendStart is called before a batch of writes of this datacenter is
	// sent to a peer: by the built-in Reship, the reship hop of an MQ wiring
	// (package hop), or a Reconciler.
	SendStart(ctx context.Context, b Send) context.Context
	// SendDone reports each request's final outcome of the batch, nil where
	// the peer accepted it. Requests not sent because the peer is marked
	// down carry ErrPeerDown.
	SendDone(ctx context.Context, b Send, errs []error)
	// CollectStart is called when a batch arrives from peer from, before
	// anything of it is checked.
	CollectStart(ctx context.Context, from string, reqs []*Request) context.Context
	// CollectDone reports what became of the batch.
	CollectDone(ctx context.Context, from string, reqs []*Request, res CollectResult)
	// ApplyStart is called before collected writes are applied here by the
	// Processor, by Collect or by the apply hops of an MQ wiring (package
	// hop).
	ApplyStart(ctx context.Context, reqs []*Request) context.Context
	// ApplyDone reports each write's outcome, nil where applied.
	ApplyDone(ctx context.Context, reqs []*Request, errs []error)
	// ReconcileDone reports a pass of a Reconciler of datacenter dc, and
	// the error that ended it early, if any.
	ReconcileDone(ctx context.Context, dc string, rep Report, err error)
}

// Send describes a batch sent to a peer.
type Send struct {
	Peer   string     // the datacenter sent to
	Reqs   []*Request // the writes, all of this datacenter
	Repair bool       // sent by a Reconciler, not on the write's first way
}

// CollectResult is what a Collector made of one batch.
type CollectResult struct {
	// Err is the error that rejected the whole batch (matching
	// ErrUnauthenticated or ErrInvalid, or ErrClosed); nil otherwise.
	Err error
	// Errs has each request's error, nil where the request was applied or
	// was a duplicate; nil when none failed.
	Errs []error
	// Duplicates counts the requests dropped as applied before.
	Duplicates int
}

// NopObserver does nothing; embed it in an Observer that implements only
// some of the calls.
type NopObserver struct{}

// WriteStart returns ctx.
func (NopObserver) WriteStart(ctx context.Context, _ *Request) context.Context { return ctx }

// WriteDone does nothing.
func (NopObserver) WriteDone(context.Context, *Request, error) {}

// SendStart returns ctx.
func (NopObserver) SendStart(ctx context.Context, _ Send) context.Context { return ctx }

// SendDone does nothing.
func (NopObserver) SendDone(context.Context, Send, []error) {}

// CollectStart returns ctx.
func (NopObserver) CollectStart(ctx context.Context, _ string, _ []*Request) context.Context {
	return ctx
}

// CollectDone does nothing.
func (NopObserver) CollectDone(context.Context, string, []*Request, CollectResult) {}

// ApplyStart returns ctx.
func (NopObserver) ApplyStart(ctx context.Context, _ []*Request) context.Context { return ctx }

// ApplyDone does nothing.
func (NopObserver) ApplyDone(context.Context, []*Request, []error) {}

// ReconcileDone does nothing.
func (NopObserver) ReconcileDone(context.Context, string, Report, error) {}

// Observers returns an Observer calling each of obs in turn (Start calls in
// order, each under the context the previous returned). Nil entries are
// skipped; with none left it returns nil.
func Observers(obs ...Observer) Observer {
	var m multiObserver
	for _, o := range obs {
		if o != nil {
			m = append(m, o)
		}
	}
	switch len(m) {
	case 0:
		return nil
	case 1:
		return m[0]
	}
	return m
}

type multiObserver []Observer

func (m multiObserver) WriteStart(ctx context.Context, req *Request) context.Context {
	for _, o := range m {
		ctx = o.WriteStart(ctx, req)
	}
	return ctx
}

func (m multiObserver) WriteDone(ctx context.Context, req *Request, err error) {
	for _, o := range m {
		o.WriteDone(ctx, req, err)
	}
}

func (m multiObserver) SendStart(ctx context.Context, b Send) context.Context {
	for _, o := range m {
		ctx = o.SendStart(ctx, b)
	}
	return ctx
}

func (m multiObserver) SendDone(ctx context.Context, b Send, errs []error) {
	for _, o := range m {
		o.SendDone(ctx, b, errs)
	}
}

func (m multiObserver) CollectStart(ctx context.Context, from string, reqs []*Request) context.Context {
	for _, o := range m {
		ctx = o.CollectStart(ctx, from, reqs)
	}
	return ctx
}

func (m multiObserver) CollectDone(ctx context.Context, from string, reqs []*Request, res CollectResult) {
	for _, o := range m {
		o.CollectDone(ctx, from, reqs, res)
	}
}

func (m multiObserver) ApplyStart(ctx context.Context, reqs []*Request) context.Context {
	for _, o := range m {
		ctx = o.ApplyStart(ctx, reqs)
	}
	return ctx
}

func (m multiObserver) ApplyDone(ctx context.Context, reqs []*Request, errs []error) {
	for _, o := range m {
		o.ApplyDone(ctx, reqs, errs)
	}
}

func (m multiObserver) ReconcileDone(ctx context.Context, dc string, rep Report, err error) {
	for _, o := range m {
		o.ReconcileDone(ctx, dc, rep, err)
	}
}

// observeSend runs send, a batch's delivery to b.Peer, between obs's
// SendStart and SendDone; obs may be nil.
func observeSend(ctx context.Context, obs Observer, b Send, send func(context.Context) []error) []error {
	if obs == nil {
		return send(ctx)
	}
	ctx = obs.SendStart(ctx, b)
	errs := send(ctx)
	obs.SendDone(ctx, b, errs)
	return errs
}

// collectResult describes the outcome err of a Collect that dropped dups
// duplicates.
func collectResult(err error, dups int) CollectResult {
	res := CollectResult{Duplicates: dups}
	var be *BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		res.Errs = be.Errs
	default:
		res.Err = err
	}
	return res
}
