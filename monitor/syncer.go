package monitor

import (
	"context"

	"github.com/dcsync/dcsync"
)

// Stater is what SyncerSource reads; *dcsync.Syncer implements it.
type Stater interface {
	Stats() dcsync.Stats
}

// SyncerSource returns a Source that adds to a Snapshot what the Syncer
// counts itself, read from its Stats when the Snapshot is taken (so it
// costs the write path nothing): each peer's exact backlog and the age of
// its oldest write, the refusals of the transports and the clock, and the
// audit queue. Add it once the Syncer exists:
//
//	mon := monitor.New("eu", []string{"us"})
//	s, err := dcsync.New(dcsync.Config{DC: "eu", Observer: mon, ...})
//	mon.AddSource(monitor.SyncerSource(s))
func SyncerSource(s Stater) Source {
	return SourceFunc(func(_ context.Context, snap *Snapshot) {
		st := s.Stats()
		for name, ps := range st.Peers {
			p := snap.Peer(name)
			if p == nil {
				continue
			}
			p.Backlog = uint64(max(ps.Queued, ps.Backlog, 0))
			p.Oldest = ps.Oldest
		}
		snap.Refused = map[string]uint64{
			"unauthenticated": st.RefusedUnauthenticated,
			"invalid":         st.RefusedInvalid,
			"too_large":       st.RefusedTooLarge,
			"clock_skew":      st.Skewed,
		}
		if snap.Audit == nil {
			snap.Audit = &Audit{}
		}
		snap.Audit.Queued = int64(st.AuditQueued)
		snap.Audit.Dropped = st.AuditDropped
		snap.Audit.FullWaits = st.AuditFull
	})
}
