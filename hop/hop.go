// Package hop runs a Syncer's stages one batch at a time, for the MQ
// wirings: transports whose own workers carry writes between durable
// queues (transport/redis over Redis Streams, transport/kafka over Kafka
// topics) rather than letting the Syncer ship and collect them itself.
//
// A write of datacenter A takes four hops there and in a peer B, each a
// consumer of one queue that hands its batch to the next:
//
//	A's outbound queue ─Apply──▶ A's Processor         (the local hop: A's own writes)
//	A's outbound queue ─Ship───▶ B's inbound queue     (the reship hop, one per peer)
//	B's inbound queue  ─Collect▶ B's apply queue       (authenticate, validate, dedupe)
//	B's apply queue    ─Apply──▶ B's Processor         (the apply hop)
//
// Every stage takes a batch and returns one error per request, nil where
// it went through, so a worker settles each request of its batch on its
// own: acknowledges it, retries it, or dead-letters it. What a stage needs
// per batch is an argument — the Sender that carries it, the store its
// claims are made in, the next hop that takes it — never a value hidden
// in the context. Every stage records its audit records and counts its
// Stats as the Syncer's own Reship and Collector do.
//
// The Syncer of an MQ wiring has the wiring's Node as Config.Reship, a
// dcsync.WriteAheadReship: Write adds a write to the outbound queue and
// returns, and the local hop applies it.
package hop

import (
	"context"
	"errors"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/stages"
)

// The stages, as package dcsync registered them; a type that does not
// match fails every program that imports hop when it starts.
var (
	ship = stages.Ship.(func(*dcsync.Syncer, context.Context, string, dcsync.Sender,
		[]*dcsync.Request) []error)
	collect = stages.Collect.(func(*dcsync.Syncer, context.Context, string, []*dcsync.Request,
		dcsync.DedupeStore, func(context.Context, []*dcsync.Request) []error) []error)
	apply  = stages.Apply.(func(*dcsync.Syncer, context.Context, []*dcsync.Request) []error)
	dedupe = stages.Dedupe.(func(*dcsync.Syncer) dcsync.DedupeStore)
)

// Stages are the batch stages of one Syncer. The zero value is not
// usable; Of returns them. They are safe for concurrent use.
type Stages struct{ s *dcsync.Syncer }

// Of returns the stages of s.
func Of(s *dcsync.Syncer) Stages { return Stages{s} }

// Next hands a batch of collected writes on to the next hop (the apply
// queue) and returns one error per request, nil where it was handed on, or
// a nil slice when all were.
type Next func(ctx context.Context, reqs []*dcsync.Request) []error

// Ship is the reship hop: it delivers reqs, written here, to peer through
// sender — the Syncer's Sender for peer when sender is nil — retrying the
// requests that fail with the Syncer's Delivery backoff, and records every
// attempt as the built-in Reship does. It returns each request's final
// error: ErrUnknownPeer for all of them when peer is not one of the
// Syncer's. A transport passes a sender of its own to carry what it knows
// of the batch, such as the encodings the requests were read in.
func (st Stages) Ship(ctx context.Context, peer string, sender dcsync.Sender, reqs []*dcsync.Request) []error {
	return ship(st.s, ctx, peer, sender, reqs)
}

// Collect is the collect hop: it runs the Syncer's Collector over reqs
// sent by from, with three differences that suit a queue's worker. Each
// request is admitted on its own: one that is nil or claims another origin
// than from fails alone (permanently: ErrForgedOrigin, ErrNilRequest), and
// the rest flow on, where the Collector refuses the whole batch (nor is
// the batch held to Limits.MaxBatch: the worker bounds what it reads).
// Requests are claimed in claims, the Syncer's DedupeStore when nil: a
// transport may pass a view of the store that answers a batch's claims
// from one read and writes its commits with the hand-off. And when next is
// set, the
// accepted writes go to next instead of the Processor: the collect hop
// records a collect record for them, and the apply hop, which applies
// them, the apply record. A claim is committed only for a write that next
// took, and released for one it failed.
//
// It returns each request's error: nil where the write was handed on (or
// applied) or dropped as applied before, ErrInFlight where another
// collector holds its claim, and ErrClosed or ErrUnknownPeer for all of
// them when the Syncer is closed or from is not a peer.
func (st Stages) Collect(ctx context.Context, from string, reqs []*dcsync.Request, claims dcsync.DedupeStore,
	next Next) []error {
	return collect(st.s, ctx, from, reqs, claims, next)
}

// Apply is the local and apply hops: it validates reqs and applies them
// through the Processor, in one call when it is a dcsync.BatchProcessor,
// and returns each one's error. A write that originated here (written
// ahead through a dcsync.WriteAheadReship) gets a process record carrying
// the request, as Write would record it, and counts as written; another
// gets an apply record and counts as applied. Applying a write again is
// safe: Processors are idempotent.
func (st Stages) Apply(ctx context.Context, reqs []*dcsync.Request) []error {
	return apply(st.s, ctx, reqs)
}

// Dedupe returns the Syncer's DedupeStore, which Collect claims in when
// given none: a transport passes a view of it only when it is its own.
func (st Stages) Dedupe() dcsync.DedupeStore { return dedupe(st.s) }

// Err returns errs, a stage's result, as one error: nil when every
// request went through, else a *dcsync.BatchError.
func Err(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return &dcsync.BatchError{Errs: errs}
		}
	}
	return nil
}

// Errs returns the error of each of n requests of a batch whose call
// returned err — a Sender's Send, a BatchProcessor's ProcessBatch — the
// inverse of Err: all nil, the errors of a *dcsync.BatchError of n, or
// err for each.
func Errs(err error, n int) []error {
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
