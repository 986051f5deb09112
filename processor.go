package dcsync

import "context"

// Processor applies a write to the local datacenter's state: its database,
// its cache. Write calls it for writes that enter here, the Collector for
// writes that arrive from peers. It may be called more than once for one
// write when a datacenter retries after a crash, so an implementation should
// be idempotent; one that applies only writes newer than the stored version
// (see Request.Newer) also converges under concurrent writes to one key.
type Processor interface {
	Process(ctx context.Context, req *Request) error
}

// ProcessorFunc adapts an ordinary function to a Processor.
type ProcessorFunc func(ctx context.Context, req *Request) error

// Process calls f(ctx, req).
func (f ProcessorFunc) Process(ctx context.Context, req *Request) error { return f(ctx, req) }

// BatchProcessor is a Processor that can also apply a batch at once, in one
// round trip to its store. The Collector uses ProcessBatch for the writes of
// a batch it has accepted. It returns nil when all were applied, a
// *BatchError naming the ones that failed, or an error for the whole batch.
type BatchProcessor interface {
	Processor
	ProcessBatch(ctx context.Context, reqs []*Request) error
}
