// Package prom exports a datacenter's dcsync to Prometheus, with
// github.com/prometheus/client_golang.
//
// Metrics is a dcsync.Observer counting every stage as it happens, and a
// prometheus.Collector reading gauges at scrape time from a
// monitor.Monitor and from optional sources (the dedupe store, the Redis
// streams of the MQ wiring, the audit log, the reconciler's checkpoint).
// Labels are bounded: peer and origin are datacenter names, reason and
// result come from small fixed sets; never a request ID or a key.
//
//	mon := monitor.New("eu", []string{"us"})
//	m := prom.New(mon, prom.Options{})
//	prometheus.MustRegister(m)
//	s, err := dcsync.New(dcsync.Config{DC: "eu", Observer: dcsync.Observers(mon, m), ...})
//	http.Handle("/metrics", promhttp.Handler())
//
// The metrics (all prefixed dcsync_):
//
//	writes_total{result}                      writes accepted here, or rejected by the Processor
//	shipped_total{peer}                       deliveries a peer accepted
//	shipped_bytes_total{peer}                 bytes of key, payload and header of those deliveries
//	ship_failed_total{peer,reason}            deliveries given up, left to the reconciler
//	repaired_total{peer}                      deliveries of the reconciler a peer accepted
//	batches_in_flight{peer}                   batches being sent
//	peer_backlog{peer}                        writes waiting to be sent, or on their way
//	peer_up{peer}                             0 while every batch since peer_down_since failed
//	peer_down_since_timestamp_seconds{peer}   when the peer went down, 0 while up
//	collected_total{peer}                     writes accepted from a peer
//	duplicates_total{peer}                    writes from a peer dropped as applied before
//	collect_refused_total{peer,reason}        writes from a peer refused (a batch refused whole counts each)
//	applied_total{origin}, apply_failed_total{origin}
//	replication_lag_seconds{origin}           histogram: apply time here minus the write's time at its origin
//	reconcile_passes_total{result}            passes: ok, error, or follower (another holds the lock)
//	reconcile_writes_total{outcome}           writes scanned, complete, repaired, failing, rejected, orphaned
//	reconcile_failing                         writes the last pass left missing somewhere
//	reconcile_last_pass_timestamp_seconds     end of the last pass that read the log
//	reconcile_checkpoint_age_seconds          now minus the checkpoint (with Options.Checkpoints)
//	failing_writes                            writes whose last delivery to some peer failed
//	dedupe_entries                            (with Options.Dedupe or DedupeLen)
//	audit_records_total{result}, audit_spool_records, audit_spool_bytes
//	                                          the audit log's store (with audit/elastic's Log.Source)
//	audit_queue_records                       records waiting in the Syncer's audit queue (with monitor.SyncerSource)
//	audit_dropped_total                       audit records given up: the log failed to take them (ditto)
//	audit_full_waits_total                    writes that waited for a log full of incomplete writes (ditto)
//	refused_batches_total{reason}             batches a transport refused whole: unauthenticated, invalid, too_large (ditto)
//	clock_skew_refused_total                  collected writes refused: version too far ahead (ditto)
//	stream_length{stream}, stream_pending{stream}, dead_letters   (with Options.Streams)
//	topic_records{topic}, topic_lag{topic,hop}, dead_letters      (with Options.Topics)
package prom

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/monitor"
)

// Options adds optional sources of gauges. Every field may be nil.
type Options struct {
	// Dedupe returns the number of IDs the dedupe store remembers
	// (dcsync.MemoryDedupe's Len).
	Dedupe func() int
	// DedupeLen is Dedupe for a store that asks a server, bounded by
	// Timeout (transport/redis's Dedupe.Len). Set one of the two.
	DedupeLen func(ctx context.Context) (int, error)
	// Streams reports the Redis streams of the MQ wiring.
	Streams monitor.Streams
	// Topics reports the Kafka topics of the MQ wiring and the lag of
	// each hop (transport/kafka's Node).
	Topics monitor.Topics
	// Checkpoints and DC give the reconciler's checkpoint, for its age.
	Checkpoints dcsync.CheckpointStore
	DC          string
	// Timeout bounds what a scrape waits for Streams, Topics and Checkpoints;
	// default 5s.
	Timeout time.Duration
	// LagBuckets are the buckets of replication_lag_seconds; default 1ms
	// to about 65s, doubling.
	LagBuckets []float64
}

// Metrics counts what a datacenter's dcsync does for Prometheus. It is a
// dcsync.Observer and a prometheus.Collector; register it once.
type Metrics struct {
	dcsync.NopObserver
	mon  *monitor.Monitor
	opts Options

	accepted, rejected prometheus.Counter
	shipped            *prometheus.CounterVec
	shippedBytes       *prometheus.CounterVec
	shipFailed         *prometheus.CounterVec
	repaired           *prometheus.CounterVec
	inFlight           *prometheus.GaugeVec
	collected          *prometheus.CounterVec
	duplicates         *prometheus.CounterVec
	refused            *prometheus.CounterVec
	applied            *prometheus.CounterVec
	applyFailed        *prometheus.CounterVec
	lag                *prometheus.HistogramVec
	passes             *prometheus.CounterVec
	reconciled         *prometheus.CounterVec
	lastFailing        prometheus.Gauge
	lastPass           prometheus.Gauge

	backlog, up, downSince, failing, dedupe, checkpointAge, auditRecords, spool,
	streamLen, streamPending, deadLetters, topicRecords, topicLag *prometheus.Desc
	spoolBytes, auditQueue, auditDropped, auditWaits, refusedBatches, skewed *prometheus.Desc
}

// New returns the Metrics of the datacenter mon follows; mon may be nil,
// and then the gauges read from it are left out.
func New(mon *monitor.Monitor, opts Options) *Metrics {
	opts.Timeout = max(opts.Timeout, 0)
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.LagBuckets == nil {
		opts.LagBuckets = prometheus.ExponentialBuckets(0.001, 2, 17)
	}
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dcsync_writes_total",
		Help: "Writes accepted here, or rejected by the local Processor."}, []string{"result"})
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dcsync_" + name, Help: help}, labels)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("dcsync_"+name, help, labels, nil)
	}
	m := &Metrics{mon: mon, opts: opts,
		accepted:     writes.WithLabelValues("accepted"),
		rejected:     writes.WithLabelValues("rejected"),
		shipped:      counter("shipped_total", "Deliveries a peer accepted.", "peer"),
		shippedBytes: counter("shipped_bytes_total", "Bytes of key, payload and header of the deliveries a peer accepted.", "peer"),
		shipFailed:   counter("ship_failed_total", "Deliveries given up, left to the reconciler.", "peer", "reason"),
		repaired:     counter("repaired_total", "Deliveries of the reconciler a peer accepted.", "peer"),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dcsync_batches_in_flight",
			Help: "Batches being sent to a peer."}, []string{"peer"}),
		collected:   counter("collected_total", "Writes accepted from a peer.", "peer"),
		duplicates:  counter("duplicates_total", "Writes from a peer dropped as applied before.", "peer"),
		refused:     counter("collect_refused_total", "Writes from a peer refused, by reason.", "peer", "reason"),
		applied:     counter("applied_total", "Collected writes applied here, by origin.", "origin"),
		applyFailed: counter("apply_failed_total", "Collected writes whose apply failed, by origin.", "origin"),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dcsync_replication_lag_seconds",
			Help:    "Time from a write's acceptance at its origin (its version) to its apply here.",
			Buckets: opts.LagBuckets}, []string{"origin"}),
		passes:     counter("reconcile_passes_total", "Reconciler passes: ok, error, or follower.", "result"),
		reconciled: counter("reconcile_writes_total", "Writes the reconciler's passes found, by outcome.", "outcome"),
		lastFailing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dcsync_reconcile_failing",
			Help: "Writes the last reconciler pass left missing in some peer."}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dcsync_reconcile_last_pass_timestamp_seconds",
			Help: "When the last reconciler pass that read the audit log ended."}),
		backlog:       desc("peer_backlog", "Writes waiting to be sent to a peer, or on their way.", "peer"),
		up:            desc("peer_up", "0 while every batch sent to the peer since it went down failed.", "peer"),
		downSince:     desc("peer_down_since_timestamp_seconds", "When the peer went down; 0 while up.", "peer"),
		failing:       desc("failing_writes", "Writes whose last delivery to some peer failed (at most 100 kept)."),
		dedupe:        desc("dedupe_entries", "IDs the dedupe store remembers."),
		checkpointAge: desc("reconcile_checkpoint_age_seconds", "Now minus the reconciler's checkpoint."),
		auditRecords:  desc("audit_records_total", "Audit records by result: appended, indexed, rejected, spooled.", "result"),
		spool:         desc("audit_spool_records", "Audit records waiting in the spool."),
		streamLen:     desc("stream_length", "Entries in a stream of the MQ wiring.", "stream"),
		streamPending: desc("stream_pending", "Entries of a stream delivered and not acknowledged.", "stream"),
		deadLetters:   desc("dead_letters", "Entries given up into the dead-letter stream or topic."),
		topicRecords:  desc("topic_records", "Records in a Kafka topic of the MQ wiring.", "topic"),
		topicLag:      desc("topic_lag", "Records of a Kafka topic that the consumer group of a hop has not committed.", "topic", "hop"),
		spoolBytes:    desc("audit_spool_bytes", "Size of the audit log's spool files."),
		auditQueue:    desc("audit_queue_records", "Audit records waiting in the Syncer's queue, or held while the log is full."),
		auditDropped:  desc("audit_dropped_total", "Audit records given up because the audit log failed to take them."),
		auditWaits:    desc("audit_full_waits_total", "Writes that waited because the audit log was full of incomplete writes."),
		refusedBatches: desc("refused_batches_total",
			"Batches a transport refused whole before collecting them, by reason.", "reason"),
		skewed: desc("clock_skew_refused_total", "Collected writes refused because their version was too far ahead."),
	}
	return m
}

var _ dcsync.Observer = (*Metrics)(nil)

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.shipped, m.shippedBytes, m.shipFailed, m.repaired, m.inFlight,
		m.collected, m.duplicates, m.refused, m.applied, m.applyFailed, m.lag, m.passes, m.reconciled,
		m.lastFailing, m.lastPass}
}

// WriteDone implements dcsync.Observer.
func (m *Metrics) WriteDone(_ context.Context, _ *dcsync.Request, err error) {
	if err == nil {
		m.accepted.Inc()
		return
	}
	if monitor.Reason(err) == "error" { // the Processor's own error
		m.rejected.Inc()
	} else {
		m.accepted.Inc() // applied here; queueing or waiting for peers failed
	}
}

// SendStart implements dcsync.Observer.
func (m *Metrics) SendStart(ctx context.Context, b dcsync.Send) context.Context {
	m.inFlight.WithLabelValues(b.Peer).Inc()
	return ctx
}

// SendDone implements dcsync.Observer.
func (m *Metrics) SendDone(_ context.Context, b dcsync.Send, errs []error) {
	m.inFlight.WithLabelValues(b.Peer).Dec()
	ok, bytes := 0, 0
	for i, err := range errs {
		if err != nil {
			m.shipFailed.WithLabelValues(b.Peer, monitor.Reason(err)).Inc()
			continue
		}
		ok++
		bytes += size(b.Reqs[i])
	}
	m.shipped.WithLabelValues(b.Peer).Add(float64(ok))
	m.shippedBytes.WithLabelValues(b.Peer).Add(float64(bytes))
	if b.Repair {
		m.repaired.WithLabelValues(b.Peer).Add(float64(ok))
	}
}

func size(r *dcsync.Request) int {
	n := len(r.ID) + len(r.Origin) + len(r.Key) + len(r.Op) + len(r.Payload) + 8
	for k, v := range r.Header {
		n += len(k) + len(v)
	}
	return n
}

// CollectDone implements dcsync.Observer.
func (m *Metrics) CollectDone(_ context.Context, from string, reqs []*dcsync.Request, res dcsync.CollectResult) {
	if res.Err != nil {
		m.refused.WithLabelValues(from, monitor.Reason(res.Err)).Add(float64(len(reqs)))
		return
	}
	bad := 0
	for _, err := range res.Errs {
		if err != nil {
			bad++
			m.refused.WithLabelValues(from, monitor.Reason(err)).Inc()
		}
	}
	m.collected.WithLabelValues(from).Add(float64(len(reqs) - bad - res.Duplicates))
	if res.Duplicates > 0 {
		m.duplicates.WithLabelValues(from).Add(float64(res.Duplicates))
	}
}

// ApplyDone implements dcsync.Observer: it observes the replication lag
// of every applied write.
func (m *Metrics) ApplyDone(_ context.Context, reqs []*dcsync.Request, errs []error) {
	now := time.Now()
	var lag prometheus.Observer
	var origin string
	ok := 0
	for i, req := range reqs {
		if req.Origin != origin || lag == nil {
			if ok > 0 {
				m.applied.WithLabelValues(origin).Add(float64(ok))
				ok = 0
			}
			origin, lag = req.Origin, m.lag.WithLabelValues(req.Origin)
		}
		if errs[i] != nil {
			m.applyFailed.WithLabelValues(origin).Inc()
			continue
		}
		ok++
		lag.Observe(max(now.Sub(req.Time()), 0).Seconds())
	}
	if ok > 0 {
		m.applied.WithLabelValues(origin).Add(float64(ok))
	}
}

// ReconcileDone implements dcsync.Observer.
func (m *Metrics) ReconcileDone(_ context.Context, _ string, rep dcsync.Report, err error) {
	switch {
	case err != nil:
		m.passes.WithLabelValues("error").Inc()
		return
	case !rep.Leader:
		m.passes.WithLabelValues("follower").Inc()
		return
	}
	m.passes.WithLabelValues("ok").Inc()
	for _, o := range []struct {
		name string
		n    int
	}{{"scanned", rep.Scanned}, {"complete", rep.Complete}, {"repaired", rep.Repaired},
		{"failing", rep.Failing}, {"rejected", rep.Rejected}, {"orphaned", rep.Orphaned}} {
		m.reconciled.WithLabelValues(o.name).Add(float64(o.n))
	}
	m.lastFailing.Set(float64(rep.Failing))
	m.lastPass.SetToCurrentTime()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.accepted.Describe(ch)
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{m.backlog, m.up, m.downSince, m.failing, m.dedupe, m.checkpointAge,
		m.auditRecords, m.spool, m.streamLen, m.streamPending, m.deadLetters, m.topicRecords, m.topicLag,
		m.spoolBytes, m.auditQueue, m.auditDropped, m.auditWaits, m.refusedBatches, m.skewed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ch <- m.accepted
	ch <- m.rejected
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.Timeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if m.mon != nil {
		s := m.mon.Snapshot(ctx)
		for _, p := range s.Peers {
			gauge(m.backlog, float64(p.Backlog), p.Name)
			up, since := 1.0, 0.0
			if p.Down {
				up, since = 0, float64(p.DownSince.UnixNano())/1e9
			}
			gauge(m.up, up, p.Name)
			gauge(m.downSince, since, p.Name)
		}
		gauge(m.failing, float64(len(s.Failing)))
		if a := s.Audit; a != nil {
			for _, r := range []struct {
				name string
				n    uint64
			}{{"appended", a.Appended}, {"indexed", a.Indexed}, {"rejected", a.Rejected}, {"spooled", a.Spooled}} {
				ch <- prometheus.MustNewConstMetric(m.auditRecords, prometheus.CounterValue, float64(r.n), r.name)
			}
			gauge(m.spool, float64(a.Pending))
			gauge(m.spoolBytes, float64(a.SpoolBytes))
		}
		if s.Refused != nil { // SyncerSource filled the Syncer's side
			counter := func(d *prometheus.Desc, v uint64, labels ...string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
			}
			for _, r := range []string{"unauthenticated", "invalid", "too_large"} {
				counter(m.refusedBatches, s.Refused[r], r)
			}
			counter(m.skewed, s.Refused["clock_skew"])
			if a := s.Audit; a != nil {
				gauge(m.auditQueue, float64(a.Queued))
				counter(m.auditDropped, a.Dropped)
				counter(m.auditWaits, a.FullWaits)
			}
		}
	}
	switch {
	case m.opts.Dedupe != nil:
		gauge(m.dedupe, float64(m.opts.Dedupe()))
	case m.opts.DedupeLen != nil:
		if n, err := m.opts.DedupeLen(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(m.dedupe, err)
		} else {
			gauge(m.dedupe, float64(n))
		}
	}
	if m.opts.Checkpoints != nil {
		if cp, err := m.opts.Checkpoints.Load(ctx, m.opts.DC); err == nil && !cp.IsZero() {
			gauge(m.checkpointAge, time.Since(cp).Seconds())
		} else if err != nil {
			ch <- prometheus.NewInvalidMetric(m.checkpointAge, err)
		}
	}
	var dead int64
	read := false // dead letters read from some wiring
	if m.opts.Streams != nil {
		if stats, err := m.opts.Streams.StreamStats(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(m.streamLen, err)
		} else {
			read = true
			for _, st := range stats {
				gauge(m.streamLen, float64(st.Length), st.Stream)
				gauge(m.streamPending, float64(st.Pending), st.Stream)
				dead += st.DeadLetters
			}
		}
	}
	if m.opts.Topics != nil {
		if stats, err := m.opts.Topics.TopicStats(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(m.topicLag, err)
		} else {
			read = true
			seen := map[string]bool{} // a topic read by several hops
			for _, st := range stats {
				if !seen[st.Topic] {
					seen[st.Topic] = true
					gauge(m.topicRecords, float64(st.Records), st.Topic)
				}
				if st.Hop != "" {
					gauge(m.topicLag, float64(st.Lag), st.Topic, st.Hop)
				}
				dead += st.DeadLetters
			}
		}
	}
	if read {
		gauge(m.deadLetters, float64(dead))
	}
}
