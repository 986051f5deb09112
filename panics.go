package dcsync

import (
	"context"
	"fmt"
	"runtime/debug"
)

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
