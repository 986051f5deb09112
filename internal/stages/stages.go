// Package stages carries the Syncer's batch stages from package dcsync to
// package hop, so that hop can run them without dcsync exporting them:
// dcsync sets these variables in its init, and hop asserts their types once,
// when it is initialised. Their types cannot be spelt here, as this package
// cannot import dcsync (dcsync imports it), hence any: the pattern of
// grpc-go's internal package.
package stages

var (
	// Ship is func(*dcsync.Syncer, context.Context, string, dcsync.Sender,
	// []*dcsync.Request) []error: the reship hop.
	Ship any
	// Collect is func(*dcsync.Syncer, context.Context, string,
	// []*dcsync.Request, dcsync.DedupeStore, func(context.Context,
	// []*dcsync.Request) []error) []error: the collect hop.
	Collect any
	// Apply is func(*dcsync.Syncer, context.Context, []*dcsync.Request)
	// []error: the local and apply hops.
	Apply any
	// Dedupe is func(*dcsync.Syncer) dcsync.DedupeStore: the Syncer's
	// store, which Collect claims in when given none.
	Dedupe any
)
