package elastic

import (
	"context"

	"github.com/dcsync/dcsync/monitor"
)

// Source returns a monitor.Source that adds the Log's Stats to a
// Snapshot's Audit: records appended, documents indexed, rejected and
// spooled, and the spool's records and bytes now. The status page, the
// health checks (the spool threshold) and metrics/prom's gauges read them
// from there.
//
//	mon.AddSource(log.Source())
func (l *Log) Source() monitor.Source {
	return monitor.SourceFunc(func(_ context.Context, s *monitor.Snapshot) {
		st := l.Stats()
		if s.Audit == nil {
			s.Audit = &monitor.Audit{}
		}
		a := s.Audit
		a.Appended, a.Indexed, a.Rejected, a.Spooled = st.Appended, st.Indexed, st.Rejected, st.Spooled
		a.Pending, a.SpoolBytes = st.Pending, st.PendingBytes
	})
}
