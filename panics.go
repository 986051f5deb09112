package dcsync

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrPanic is returned for a write whose Processor panicked. The panic is
// recovered, its message and stack logged at error level, and the write
// treated as failed: rejected at the origin, left unapplied (its dedupe
// claim released, so a redelivery may retry it) at a peer.
var ErrPanic = errors.New("dcsync: processor panicked")

// processLocal applies a write of this datacenter through the Processor.
func (s *Syncer) processLocal(ctx context.Context, req *Request) error {
	return s.guard(req.ID, func() error { return s.proc.Process(ctx, req) })
}

// guard runs fn, turning a panic into an error matching ErrPanic.
func (s *Syncer) guard(id string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("dcsync: processor panicked", "dc", s.dc, "id", id, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return fn()
}
