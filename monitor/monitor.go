// Package monitor follows a datacenter's dcsync through the core's Observer
// hook and keeps what an operator asks about: per peer, what was shipped and
// failed, the backlog, whether it is down and since when, and the lag of
// its writes applied here (p50/p99 a minute, for the last minutes); the
// writes currently failing; the last reconciler passes. It costs the write
// path one atomic addition.
//
// A Monitor is the data source of the health checks (package health), the
// status page (package admin) and the gauges of the Prometheus collectors
// (package metrics/prom); its Snapshot is what `dcsync status` prints.
//
//	mon := monitor.New("eu", []string{"us", "ap"})
//	s, err := dcsync.New(dcsync.Config{DC: "eu", Observer: mon, ...})
//	mon.AddSource(monitor.SyncerSource(s)) // exact backlog, refusals, audit queue
//	rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "eu", Observer: mon, ...})
package monitor

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync"
)

// Sizes of what a Monitor remembers.
const (
	// LagMinutes is how many minutes of lag a Monitor keeps per peer.
	LagMinutes = 15
	// MaxFailing bounds the failing writes a Monitor keeps.
	MaxFailing = 100
	// MaxPasses is how many reconciler passes a Monitor keeps.
	MaxPasses = 10
)

// Monitor is a dcsync.Observer that keeps the state of one datacenter. Its
// zero value is not usable; call New.
type Monitor struct {
	dc    string
	now   func() time.Time
	peers map[string]*peerState // fixed by New
	names []string              // sorted

	written, rejected atomic.Uint64 // writes accepted, and refused by the Processor
	queued            atomic.Uint64 // writes queued for every peer

	mu       sync.Mutex
	failing  map[failKey]Failing
	nfailing atomic.Int64 // len(failing), read without mu
	passes   []Pass       // oldest first
	started  time.Time

	sources []Source
}

// Source adds to a Snapshot what the Monitor cannot observe itself: the
// audit spool, the dead letters of the MQ wiring. Fill is called under no
// lock and may take ctx's time.
type Source interface {
	Fill(ctx context.Context, s *Snapshot)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, s *Snapshot)

// Fill calls f(ctx, s).
func (f SourceFunc) Fill(ctx context.Context, s *Snapshot) { f(ctx, s) }

type failKey struct{ id, peer string }

type peerState struct {
	shipped, failed, sent   atomic.Uint64 // requests; sent counts first sends resolved
	repaired                atomic.Uint64 // requests delivered by a reconciler
	inFlight                atomic.Int64  // batches
	collected, dups, errors atomic.Uint64 // received from the peer
	invalid                 atomic.Uint64 // batches rejected whole

	mu        sync.Mutex
	downSince time.Time
	lastErr   string
	lastOK    time.Time
	lag       [LagMinutes]lagMinute // ring by minute
}

// New returns a Monitor of datacenter dc with the given peers.
func New(dc string, peers []string) *Monitor {
	m := &Monitor{dc: dc, now: time.Now, peers: map[string]*peerState{},
		failing: map[failKey]Failing{}}
	for _, p := range peers {
		if _, ok := m.peers[p]; !ok {
			m.peers[p] = &peerState{}
			m.names = append(m.names, p)
		}
	}
	slices.Sort(m.names)
	m.started = m.now()
	return m
}

// AddSource adds a Source to every Snapshot. Call it before the first
// Snapshot (the Monitor may already observe a Syncer).
func (m *Monitor) AddSource(s Source) { m.sources = append(m.sources, s) }

// WriteStart implements dcsync.Observer.
func (m *Monitor) WriteStart(ctx context.Context, _ *dcsync.Request) context.Context { return ctx }

// WriteDone implements dcsync.Observer.
func (m *Monitor) WriteDone(_ context.Context, _ *dcsync.Request, err error) {
	switch {
	case err == nil:
		m.queued.Add(1)
		m.written.Add(1)
	case errors.Is(err, dcsync.ErrQueueFull) || errors.Is(err, dcsync.ErrNotReplicated):
		m.written.Add(1) // applied here, maybe queued: the backlog may run high
		m.queued.Add(1)
	case errors.Is(err, dcsync.ErrClosed):
	default:
		m.rejected.Add(1)
	}
}

// SendStart implements dcsync.Observer.
func (m *Monitor) SendStart(ctx context.Context, b dcsync.Send) context.Context {
	if p := m.peers[b.Peer]; p != nil {
		p.inFlight.Add(1)
	}
	return ctx
}

// SendDone implements dcsync.Observer.
func (m *Monitor) SendDone(_ context.Context, b dcsync.Send, errs []error) {
	p := m.peers[b.Peer]
	if p == nil {
		return
	}
	p.inFlight.Add(-1)
	failed := 0
	var last error
	for _, err := range errs {
		if err != nil {
			failed++
			last = err
		}
	}
	ok := uint64(len(errs) - failed)
	p.shipped.Add(ok)
	p.failed.Add(uint64(failed))
	if b.Repair {
		p.repaired.Add(ok)
	} else {
		p.sent.Add(uint64(len(errs)))
	}
	now := m.now()
	p.mu.Lock()
	switch {
	case failed < len(errs):
		p.downSince, p.lastOK = time.Time{}, now
	case p.downSince.IsZero() && len(errs) > 0:
		p.downSince = now
	}
	if last != nil {
		p.lastErr = last.Error()
	}
	p.mu.Unlock()
	if failed == 0 && m.nfailing.Load() == 0 {
		return
	}
	m.mu.Lock()
	defer func() { m.nfailing.Store(int64(len(m.failing))); m.mu.Unlock() }()
	for i, err := range errs {
		k := failKey{b.Reqs[i].ID, b.Peer}
		if err == nil {
			delete(m.failing, k)
			continue
		}
		f, seen := m.failing[k]
		if !seen {
			if len(m.failing) >= MaxFailing {
				continue
			}
			f = Failing{ID: k.id, Peer: b.Peer, Since: now, TraceID: TraceID(b.Reqs[i])}
		}
		f.Attempts++
		f.Error, f.Last = err.Error(), now
		m.failing[k] = f
	}
}

// CollectStart implements dcsync.Observer.
func (m *Monitor) CollectStart(ctx context.Context, _ string, _ []*dcsync.Request) context.Context {
	return ctx
}

// CollectDone implements dcsync.Observer.
func (m *Monitor) CollectDone(_ context.Context, from string, reqs []*dcsync.Request, res dcsync.CollectResult) {
	p := m.peers[from]
	if p == nil {
		return
	}
	if res.Err != nil {
		p.invalid.Add(1)
		return
	}
	bad := 0
	for _, err := range res.Errs {
		if err != nil {
			bad++
		}
	}
	p.collected.Add(uint64(len(reqs) - bad - res.Duplicates))
	p.dups.Add(uint64(res.Duplicates))
	p.errors.Add(uint64(bad))
}

// ApplyStart implements dcsync.Observer.
func (m *Monitor) ApplyStart(ctx context.Context, _ []*dcsync.Request) context.Context { return ctx }

// ApplyDone implements dcsync.Observer: it measures the lag of every
// applied write from its origin's clock, read from its version.
func (m *Monitor) ApplyDone(_ context.Context, reqs []*dcsync.Request, errs []error) {
	now := m.now()
	var p *peerState
	var origin string
	for i, req := range reqs {
		if errs[i] != nil {
			continue
		}
		if p == nil || req.Origin != origin {
			if p != nil {
				p.mu.Unlock()
			}
			origin, p = req.Origin, m.peers[req.Origin]
			if p == nil {
				continue
			}
			p.mu.Lock()
		}
		p.lagAt(now).add(now.Sub(req.Time()))
	}
	if p != nil {
		p.mu.Unlock()
	}
}

// ReconcileDone implements dcsync.Observer.
func (m *Monitor) ReconcileDone(_ context.Context, _ string, rep dcsync.Report, err error) {
	pass := Pass{Time: m.now(), Report: rep}
	if err != nil {
		pass.Error = err.Error()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.passes = append(m.passes, pass)
	if len(m.passes) > MaxPasses {
		m.passes = slices.Delete(m.passes, 0, len(m.passes)-MaxPasses)
	}
}

var _ dcsync.Observer = (*Monitor)(nil)

// TraceID returns the W3C trace ID carried in req.Header's traceparent, or
// "" when there is none.
func TraceID(req *dcsync.Request) string {
	tp := req.Header["traceparent"] // version-traceid-spanid-flags
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	return tp[3:35]
}

// Streams reports the Redis streams of the MQ wiring, for metrics/prom's
// gauges; transport/redis's Node implements it.
type Streams interface {
	StreamStats(ctx context.Context) ([]StreamStat, error)
}

// StreamStat is the state of one stream of the MQ wiring.
type StreamStat struct {
	Stream      string // its name, one per hop: bounded
	Length      int64  // entries in the stream
	Pending     int64  // entries delivered to a consumer and not acknowledged
	DeadLetters int64  // entries given up into the dead-letter stream
}

// Topics reports the Kafka topics of the MQ wiring and how far behind each
// hop's consumer group is, for metrics/prom's gauges; transport/kafka's
// Node implements it.
type Topics interface {
	TopicStats(ctx context.Context) ([]TopicStat, error)
}

// TopicStat is the state of one hop of the Kafka wiring: a topic, and the
// consumer group that reads it. Names are bounded sets of labels.
type TopicStat struct {
	Topic string // "outbound", "inbound:<peer>", "apply", "dead"
	Hop   string // the group reading it: "local", "reship:<peer>", "collect", "apply"; "" for "dead"
	// Records is how many records the topic keeps, over all partitions.
	Records int64
	// Lag is how many of them the hop's group has not committed: records
	// waiting for the hop, or on their way through it.
	Lag int64
	// DeadLetters is, for "dead", its Records.
	DeadLetters int64
}
