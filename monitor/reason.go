package monitor

import (
	"context"
	"errors"

	"github.com/dcsync/dcsync"
)

// Reasons returned by Reason, a bounded set fit for a metric label.
var reasons = []struct {
	err  error
	name string
}{
	{dcsync.ErrUnknownPeer, "unknown_peer"},
	{dcsync.ErrForgedOrigin, "forged_origin"},
	{dcsync.ErrUnauthenticated, "unauthenticated"},
	{dcsync.ErrBatchTooLarge, "batch_too_large"},
	{dcsync.ErrTooLarge, "too_large"},
	{dcsync.ErrInvalid, "invalid"},
	{dcsync.ErrClockSkew, "clock_skew"},
	{dcsync.ErrInFlight, "in_flight"},
	{dcsync.ErrPeerDown, "peer_down"},
	{dcsync.ErrQueueFull, "queue_full"},
	{dcsync.ErrNotReplicated, "not_replicated"},
	{dcsync.ErrClosed, "closed"},
	{context.DeadlineExceeded, "timeout"},
	{context.Canceled, "canceled"},
}

// Reason names the kind of err in a word from a small fixed set, for a
// metric label or a span attribute: "unknown_peer", "forged_origin",
// "unauthenticated", "batch_too_large", "too_large", "invalid",
// "clock_skew", "in_flight", "peer_down", "queue_full", "not_replicated",
// "closed", "timeout", "canceled", or "error" for anything else; "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "error"
}
