package dcsync

import (
	"errors"
	"fmt"
)

// The errors of the package, matched with errors.Is. Wrapped errors keep
// their sentinel: a failed Write or Collect can be told apart by these.

// ErrAuditFull matches the error of an AuditLog's Append that has no room
// left for new writes (process entries) but what holds writes not yet
// complete everywhere. A Syncer holds the entries and tries again, and its
// writers wait. It appends the entries of other stages, which complete the
// writes a log holds, apart, and a store must take them even when full.
var ErrAuditFull = errors.New("dcsync: audit log full of writes not yet complete")

// ErrAuditBusy matches the error of a Write that was not taken because the
// Syncer's audit queue (Config.AuditQueue records) stayed full until the
// write's context ended: the AuditLog takes records slower than they come.
// The write was applied nowhere; it may be written again.
var ErrAuditBusy = errors.New("dcsync: audit queue full: the audit log takes records slower than writes come")

// ErrClockSkew is returned for a collected write whose version is further
// ahead of the local clock than Config.MaxSkew allows. It is retryable: the
// write is accepted once the local clock has caught up, or the sender's
// clock is mended and the write resent.
var ErrClockSkew = errors.New("dcsync: write's version too far ahead of the local clock")

// ErrInFlight is returned for a write that another worker of the same
// datacenter is applying at this moment. It is retryable: the retry will
// find it applied.
var ErrInFlight = errors.New("dcsync: write is being applied by another worker")

// ErrPanic is returned for a write whose Processor panicked. The panic is
// recovered, its message and stack logged at error level, and the write
// treated as failed: rejected at the origin, left unapplied (its dedupe
// claim released, so a redelivery may retry it) at a peer.
var ErrPanic = errors.New("dcsync: processor panicked")

// Errors returned for requests that can never succeed. All of them match
// ErrInvalid with errors.Is, and IsPermanent reports true for them: a sender
// does not retry them.
var (
	ErrInvalid       = errors.New("dcsync: invalid request")
	ErrNilRequest    = fmt.Errorf("%w: nil request", ErrInvalid)
	ErrEmptyKey      = fmt.Errorf("%w: empty key", ErrInvalid)
	ErrInvalidID     = fmt.Errorf("%w: malformed ID", ErrInvalid)
	ErrTooLarge      = fmt.Errorf("%w: over the size limit", ErrInvalid)
	ErrNoVersion     = fmt.Errorf("%w: missing version", ErrInvalid)
	ErrBatchTooLarge = fmt.Errorf("%w: batch over the size limit", ErrInvalid)
)

// Errors about who sent a batch. The whole batch is rejected and nothing of
// it is applied.
var (
	ErrUnauthenticated = errors.New("dcsync: peer not authenticated")
	ErrUnknownPeer     = fmt.Errorf("%w: unknown datacenter", ErrUnauthenticated)
	ErrForgedOrigin    = fmt.Errorf("%w: request origin differs from sending datacenter", ErrUnauthenticated)
)

// ErrClosed is returned by operations on a closed Syncer.
var ErrClosed = errors.New("dcsync: syncer closed")

// IsPermanent reports whether err can never succeed on retry: an invalid
// request or an unauthenticated peer. Everything else is worth retrying.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnauthenticated)
}

// BatchError reports which requests of a batch failed. The requests it does
// not name succeeded, so a sender retries only the failed ones.
type BatchError struct {
	// Errs has one entry per request of the batch, nil where it succeeded.
	Errs []error
}

// Error summarises the failures.
func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("dcsync: %d of %d requests failed, first: %v", n, len(e.Errs), first)
}

// Unwrap returns the individual failures, so errors.Is matches any of them.
func (e *BatchError) Unwrap() []error {
	var errs []error
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// ErrQueueFull is returned by Write when a peer's queue stayed full until the
// context ended. The write was applied locally and recorded, so the
// reconciler still delivers it.
var ErrQueueFull = errors.New("dcsync: reship queue full")

// ErrPeerDown is recorded for writes not sent because their peer is down
// and its queue is full, or the Syncer closed meanwhile; the reconciler
// delivers them once it is back.
var ErrPeerDown = errors.New("dcsync: peer unavailable, left to the reconciler")

// ErrNotReplicated is matched by every error of a Write that applied the
// write here (or, with a WriteAheadReship, handed it to the Reship): too
// many peers failed to apply it for the requested quorum, the context
// ended or the Syncer closed before they acknowledged it, or it could not
// be queued for the peers (then the error also matches ErrQueueFull or
// ErrClosed). The journal, the senders or the reconciler go on delivering
// it; it must not be written again as a new write.
var ErrNotReplicated = errors.New("dcsync: write not applied by enough peers")
