package prom_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/obstest"
	"github.com/dcsync/dcsync/metrics/prom"
	"github.com/dcsync/dcsync/monitor"
)

type streams []monitor.StreamStat

func (s streams) StreamStats(context.Context) ([]monitor.StreamStat, error) { return s, nil }

func TestMetrics(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	mets := map[string]*prom.Metrics{}
	mesh := obstest.New(t, func(dc string, peers []string) dcsync.Observer {
		mon := monitor.New(dc, peers)
		m := prom.New(mon, prom.Options{Dedupe: func() int { return 7 },
			Streams: streams{{Stream: "out:" + dc, Length: 3, Pending: 1, DeadLetters: 2}}})
		regs[dc] = prometheus.NewPedanticRegistry()
		regs[dc].MustRegister(m)
		mets[dc] = m
		return dcsync.Observers(mon, m)
	}, "a", "b", "c")
	mesh.Down("c")
	mesh.Write(t, "a", 10)

	// a's view: b got everything, c nothing.
	want := `
# HELP dcsync_writes_total Writes accepted here, or rejected by the local Processor.
# TYPE dcsync_writes_total counter
dcsync_writes_total{result="accepted"} 10
dcsync_writes_total{result="rejected"} 0
# HELP dcsync_shipped_total Deliveries a peer accepted.
# TYPE dcsync_shipped_total counter
dcsync_shipped_total{peer="b"} 10
dcsync_shipped_total{peer="c"} 0
# HELP dcsync_peer_up 0 while every batch sent to the peer since it went down failed.
# TYPE dcsync_peer_up gauge
dcsync_peer_up{peer="b"} 1
dcsync_peer_up{peer="c"} 0
# HELP dcsync_peer_backlog Writes waiting to be sent to a peer, or on their way.
# TYPE dcsync_peer_backlog gauge
dcsync_peer_backlog{peer="b"} 0
dcsync_peer_backlog{peer="c"} 0
# HELP dcsync_failing_writes Writes whose last delivery to some peer failed (at most 100 kept).
# TYPE dcsync_failing_writes gauge
dcsync_failing_writes 10
# HELP dcsync_dedupe_entries IDs the dedupe store remembers.
# TYPE dcsync_dedupe_entries gauge
dcsync_dedupe_entries 7
# HELP dcsync_stream_length Entries in a stream of the MQ wiring.
# TYPE dcsync_stream_length gauge
dcsync_stream_length{stream="out:a"} 3
# HELP dcsync_dead_letters Entries given up into the dead-letter stream or topic.
# TYPE dcsync_dead_letters gauge
dcsync_dead_letters 2
`
	// The writes for c wait in a's queue, tried again whenever c is
	// probed: wait until each was tried once.
	tried := "# HELP dcsync_failing_writes Writes whose last delivery to some peer failed (at most 100 kept).\n" +
		"# TYPE dcsync_failing_writes gauge\ndcsync_failing_writes 10\n"
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if testutil.GatherAndCompare(regs["a"], strings.NewReader(tried), "dcsync_failing_writes") == nil {
			break
		}
	}
	if err := testutil.GatherAndCompare(regs["a"], strings.NewReader(want), "dcsync_writes_total",
		"dcsync_shipped_total", "dcsync_peer_up", "dcsync_peer_backlog", "dcsync_failing_writes",
		"dcsync_dedupe_entries", "dcsync_stream_length", "dcsync_dead_letters"); err != nil {
		t.Error(err)
	}
	// Every failure is counted, for peer c, by reason (the injected fault,
	// then peer_down): each write's first try at least.
	if got := sum(t, regs["a"], "dcsync_ship_failed_total", "c"); got < 10 {
		t.Errorf("ship_failed_total{peer=c} sums to %v, want at least 10", got)
	}

	// b measured the lag of a's writes, at the receiving side.
	if got := sum(t, regs["b"], "dcsync_collected_total", "a"); got != 10 {
		t.Errorf("b collected %v, want 10", got)
	}
	lagCount := histogramCount(t, regs["b"], "dcsync_replication_lag_seconds", "a")
	if lagCount != 10 {
		t.Errorf("b's lag histogram of origin a holds %d writes, want 10", lagCount)
	}

	// The metrics follow Prometheus conventions.
	for dc, reg := range regs {
		lint(t, dc, reg)
	}
}

// lint fails t for what client_golang's linter finds in reg's metrics.
func lint(t *testing.T, name string, reg *prometheus.Registry) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: lint: %s: %s", name, p.Metric, p.Text)
	}
}

func TestMetricsReconcile(t *testing.T) {
	m := prom.New(nil, prom.Options{})
	m.ReconcileDone(context.Background(), "a", dcsync.Report{Leader: true, Scanned: 5, Repaired: 2, Failing: 1}, nil)
	m.ReconcileDone(context.Background(), "a", dcsync.Report{}, nil)
	m.ReconcileDone(context.Background(), "a", dcsync.Report{}, context.DeadlineExceeded)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	want := `
# HELP dcsync_reconcile_passes_total Reconciler passes: ok, error, or follower.
# TYPE dcsync_reconcile_passes_total counter
dcsync_reconcile_passes_total{result="error"} 1
dcsync_reconcile_passes_total{result="follower"} 1
dcsync_reconcile_passes_total{result="ok"} 1
# HELP dcsync_reconcile_failing Writes the last reconciler pass left missing in some peer.
# TYPE dcsync_reconcile_failing gauge
dcsync_reconcile_failing 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dcsync_reconcile_passes_total",
		"dcsync_reconcile_failing"); err != nil {
		t.Error(err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "dcsync_reconcile_last_pass_timestamp_seconds" {
			if v := mf.GetMetric()[0].GetGauge().GetValue(); time.Since(time.Unix(int64(v), 0)) > time.Hour {
				t.Errorf("last pass at %v", v)
			}
		}
	}
}

// sum returns the sum of the counters named name gathered from reg whose
// first label is first.
func sum(t *testing.T, reg *prometheus.Registry, name, first string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == first {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name, origin string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == origin {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

type stater dcsync.Stats

func (s stater) Stats() dcsync.Stats { return dcsync.Stats(s) }

// The Syncer's own counts reach Prometheus through monitor.SyncerSource:
// the exact backlog, refusals by reason, the audit queue; and the audit
// log's spool through a Source filling Snapshot.Audit.
func TestMetricsSyncerSource(t *testing.T) {
	mon := monitor.New("a", []string{"b"})
	mon.AddSource(monitor.SourceFunc(func(_ context.Context, s *monitor.Snapshot) {
		s.Audit = &monitor.Audit{Appended: 9, Spooled: 4, Pending: 4, SpoolBytes: 1234}
	}))
	mon.AddSource(monitor.SyncerSource(stater{RefusedUnauthenticated: 3, RefusedTooLarge: 1, Skewed: 2,
		AuditFull: 5, AuditQueued: 6, AuditDropped: 7,
		Peers: map[string]dcsync.PeerStats{"b": {Queued: 8, Backlog: 11}}}))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prom.New(mon, prom.Options{DedupeLen: func(context.Context) (int, error) { return 42, nil }}))
	want := `
# HELP dcsync_dedupe_entries IDs the dedupe store remembers.
# TYPE dcsync_dedupe_entries gauge
dcsync_dedupe_entries 42
# HELP dcsync_peer_backlog Writes waiting to be sent to a peer, or on their way.
# TYPE dcsync_peer_backlog gauge
dcsync_peer_backlog{peer="b"} 11
# HELP dcsync_refused_batches_total Batches a transport refused whole before collecting them, by reason.
# TYPE dcsync_refused_batches_total counter
dcsync_refused_batches_total{reason="invalid"} 0
dcsync_refused_batches_total{reason="too_large"} 1
dcsync_refused_batches_total{reason="unauthenticated"} 3
# HELP dcsync_clock_skew_refused_total Collected writes refused because their version was too far ahead.
# TYPE dcsync_clock_skew_refused_total counter
dcsync_clock_skew_refused_total 2
# HELP dcsync_audit_queue_records Audit records waiting in the Syncer's queue, or held while the log is full.
# TYPE dcsync_audit_queue_records gauge
dcsync_audit_queue_records 6
# HELP dcsync_audit_dropped_total Audit records given up because the audit log failed to take them.
# TYPE dcsync_audit_dropped_total counter
dcsync_audit_dropped_total 7
# HELP dcsync_audit_full_waits_total Writes that waited because the audit log was full of incomplete writes.
# TYPE dcsync_audit_full_waits_total counter
dcsync_audit_full_waits_total 5
# HELP dcsync_audit_spool_records Audit records waiting in the spool.
# TYPE dcsync_audit_spool_records gauge
dcsync_audit_spool_records 4
# HELP dcsync_audit_spool_bytes Size of the audit log's spool files.
# TYPE dcsync_audit_spool_bytes gauge
dcsync_audit_spool_bytes 1234
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dcsync_dedupe_entries", "dcsync_peer_backlog",
		"dcsync_refused_batches_total", "dcsync_clock_skew_refused_total", "dcsync_audit_queue_records",
		"dcsync_audit_dropped_total", "dcsync_audit_full_waits_total", "dcsync_audit_spool_records",
		"dcsync_audit_spool_bytes"); err != nil {
		t.Error(err)
	}
	lint(t, "a", reg)
}
