package dcsync

import "github.com/dcsync/dcsync/internal/stages"

// The batch stages that package hop runs, for the MQ wirings, reach it
// through internal/stages rather than this package's API: they are plumbing
// of transports whose own workers carry writes between durable queues, not
// something a service calls.
func init() {
	stages.Ship = (*Syncer).forward
	stages.Collect = (*Syncer).collectHop
	stages.Apply = (*Syncer).applyBatch
	stages.Dedupe = func(s *Syncer) DedupeStore { return s.dedupe }
}
