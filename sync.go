package dcsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync/internal/hlc"
	"github.com/dcsync/dcsync/internal/wait"
)

// Config wires a Syncer. DC and Processor are required; the zero value of
// every other field selects its documented default.
type Config struct {
	// DC names this datacenter, as its peers know it.
	DC string
	// Peers are the other datacenters by name, each with the Sender that
	// reaches it. Batches are collected only from these names.
	Peers map[string]Sender
	// Processor applies writes here, local and collected.
	Processor Processor
	// Audit receives a record of every stage; nil logs nothing, and then no
	// Reconciler can repair this datacenter's writes.
	Audit AuditLog
	// Reship ships local writes to the peers; nil selects the built-in
	// bounded queues over Peers, tuned by Delivery.
	Reship Reship
	// ReshipApplies makes Write write-ahead through Reship: Write hands the
	// write to Reship and returns once Reship has it, without calling the
	// Processor; Reship's own workers apply it here later with ApplyBatch,
	// as they ship it to the peers. A durable Reship (the MQ wiring of
	// transport/redis, which sets it) then never leaves a write applied
	// here and not queued for the peers, and an error from Write means the
	// write was applied nowhere.
	ReshipApplies bool
	// Delivery tunes the built-in Reship.
	Delivery Delivery
	// Dedupe remembers applied writes; nil selects a MemoryDedupe. Share one
	// store between all collectors of a datacenter.
	Dedupe DedupeStore
	// Handoff, when set, receives collected writes instead of the Processor:
	// a durable queue whose workers call Syncer.Apply (the MQ wiring).
	Handoff Processor
	// Limits bounds accepted writes and batches.
	Limits Limits
	// MaxSkew, when positive, refuses collected writes whose version is
	// more than MaxSkew ahead of the local wall clock (ErrClockSkew, which
	// senders retry), so one datacenter's runaway clock cannot drag every
	// datacenter's versions into the future. Zero accepts any version.
	MaxSkew time.Duration
	// AuditQueue is how many records may wait for the audit log before
	// writers wait; default 65536.
	AuditQueue int
	// Now reads the wall clock under the version clock; default time.Now.
	Now func() time.Time
	// Logger receives errors nobody else can see (audit log failures);
	// default slog.Default().
	Logger *slog.Logger
	// Observer is told of every stage, for metrics and traces; nil for none.
	Observer Observer
}

// Stats counts what a Syncer did since New.
type Stats struct {
	Written     uint64 // writes accepted and applied by Write
	Rejected    uint64 // writes whose local processing failed
	Shipped     uint64 // deliveries acknowledged by a peer (one per peer)
	ShipFailed  uint64 // deliveries given up, left to the reconciler
	Collected   uint64 // writes accepted from peers
	Applied     uint64 // collected writes applied (or handed off)
	ApplyFailed uint64 // collected writes whose apply failed
	Duplicates  uint64 // collected writes dropped as already applied
	Invalid     uint64 // collected writes or batches rejected as invalid or unauthenticated
}

// Syncer is one datacenter's end of dcsync: Write takes local writes, the
// Collector takes writes from peers. It is safe for concurrent use.
type Syncer struct {
	dc      string
	peers   map[string]Sender
	proc    Processor
	handoff Processor
	dedupe  DedupeStore
	limits  Limits
	maxSkew time.Duration
	clock   hlc.Clock
	log     *slog.Logger
	audit   *auditQueue
	reship  Reship
	queues  *queueReship // the built-in Reship, nil when Config.Reship is set
	ahead   bool         // Config.ReshipApplies
	ship    *shipper
	obs     Observer

	mu        sync.RWMutex // held shared by Write and Collect, exclusive by Close
	closed    bool
	closing   chan struct{} // closed first by Close, to release blocked writers
	closeOnce sync.Once

	waiting atomic.Int64 // number of registered waiters
	waitMu  sync.Mutex
	waiters map[string]*waiter

	stats struct {
		written, rejected, shipped, shipFailed, collected,
		applied, applyFailed, duplicates, invalid atomic.Uint64
	}
}

// New returns a Syncer for cfg.DC.
func New(cfg Config) (*Syncer, error) {
	if cfg.DC == "" || !validID(cfg.DC) {
		return nil, fmt.Errorf("dcsync: invalid datacenter name %q", cfg.DC)
	}
	if cfg.Processor == nil {
		return nil, errors.New("dcsync: Config.Processor is required")
	}
	for name, s := range cfg.Peers {
		if name == cfg.DC || !validID(name) || s == nil {
			return nil, fmt.Errorf("dcsync: invalid peer %q", name)
		}
	}
	s := &Syncer{
		dc:      cfg.DC,
		peers:   cfg.Peers,
		proc:    cfg.Processor,
		handoff: cfg.Handoff,
		dedupe:  cfg.Dedupe,
		limits:  cfg.Limits.withDefaults(),
		maxSkew: cfg.MaxSkew,
		log:     cfg.Logger,
		obs:     cfg.Observer,
		closing: make(chan struct{}),
		waiters: map[string]*waiter{},
	}
	if s.dedupe == nil {
		s.dedupe = &MemoryDedupe{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.clock.Wall = cfg.Now
	if cfg.Audit != nil {
		s.audit = newAuditQueue(cfg.Audit, or(cfg.AuditQueue, 1<<16), time.Millisecond, func(err error) {
			s.log.Error("dcsync: audit append failed", "dc", s.dc, "err", err)
		})
	}
	d := cfg.Delivery.withDefaults()
	s.ship = &shipper{dc: s.dc, timeout: d.Timeout, backoff: d.Backoff, record: s.audit.add, obs: s.obs}
	s.reship = cfg.Reship
	s.ahead = cfg.ReshipApplies && cfg.Reship != nil
	if s.reship == nil {
		s.queues = newQueueReship(cfg.Peers, d, s.ship, s.delivered, s.closing)
		s.reship = s.queues
	}
	return s, nil
}

// DC returns the name of this datacenter.
func (s *Syncer) DC() string { return s.dc }

// Write applies req here through the Processor and ships it to every peer.
// It fills req.ID (a UUIDv7) when empty and sets req.Origin and req.Version;
// req belongs to the Syncer from then on and must not be modified.
//
// Write returns once the write is applied here and queued for the peers,
// unless an option asks it to wait for them. When local processing fails it
// returns that error and ships nothing. An invalid request returns an error
// matching ErrInvalid and applies nothing.
//
// With Config.ReshipApplies, Write returns once the Reship has the write,
// and the Reship's workers apply it here later, as they ship it: an error
// then means the write was applied nowhere, unless it wraps ctx's error
// (the Reship may have taken it; writing it again with the same ID is
// safe).
func (s *Syncer) Write(ctx context.Context, req *Request, opts ...WriteOption) (err error) {
	if err := s.limits.validate(req, false); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	req.Origin = s.dc
	req.Version = s.clock.Now()
	if req.ID == "" {
		req.ID = newID(req.Version)
	}
	if s.obs != nil {
		ctx = s.obs.WriteStart(ctx, req)
		defer func() { s.obs.WriteDone(ctx, req, err) }()
	}
	if s.ahead {
		return s.queue(ctx, req, opts) // Reship's workers apply it (ApplyBatch)
	}
	// The version's clock reading dates the record: one clock read a write.
	rec := Record{ID: req.ID, DC: s.dc, Origin: s.dc, Stage: StageProcess, Status: StatusOK,
		Attempt: 1, Written: req.Time(), Time: req.Time()}
	if err := s.proc.Process(ctx, req); err != nil {
		s.stats.rejected.Add(1)
		rec.Status, rec.Error = StatusFailed, err.Error()
		s.audit.add(rec)
		return fmt.Errorf("dcsync: process %s: %w", req.ID, err)
	}
	s.stats.written.Add(1)
	rec.Request = req
	s.audit.add(rec)

	return s.queue(ctx, req, opts)
}

// queue hands req, stamped, to the Reship and, when opts ask, waits for the
// peers' acknowledgements.
func (s *Syncer) queue(ctx context.Context, req *Request, opts []WriteOption) error {
	var w *waiter
	if len(opts) > 0 && len(s.peers) > 0 {
		var o writeOptions
		for _, opt := range opts {
			opt(&o)
		}
		if w = s.await(req.ID, o.need(len(s.peers))); w != nil {
			defer s.unwait(req.ID)
		}
	}
	if err := s.reship.Reship(ctx, req); err != nil {
		return err
	}
	if w == nil {
		return nil
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("dcsync: waiting for peers to apply %s: %w", req.ID, ctx.Err())
	}
}

// Forward sends reqs, written here, to peer through its Sender, retrying
// with the Delivery backoff and recording every attempt, and returns nil
// or a *BatchError with each request's final error. The MQ wiring's reship
// workers call it; Write's built-in Reship does the same internally.
func (s *Syncer) Forward(ctx context.Context, peer string, reqs []*Request) error {
	sender, ok := s.peers[peer]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, peer)
	}
	errs := s.ship.ship(ctx, peer, sender, reqs, nil)
	s.delivered(peer, reqs, errs)
	for _, err := range errs {
		if err != nil {
			return &BatchError{Errs: errs}
		}
	}
	return nil
}

// delivered counts the outcome of deliveries to peer and wakes writers
// waiting for them.
func (s *Syncer) delivered(peer string, reqs []*Request, errs []error) {
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	s.stats.shipped.Add(uint64(len(reqs) - failed))
	s.stats.shipFailed.Add(uint64(failed))
	if s.waiting.Load() == 0 {
		return
	}
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for i, req := range reqs {
		if w := s.waiters[req.ID]; w != nil {
			w.report(peer, errs[i])
		}
	}
}

// Stats returns the counters since New.
func (s *Syncer) Stats() Stats {
	c := &s.stats
	return Stats{Written: c.written.Load(), Rejected: c.rejected.Load(), Shipped: c.shipped.Load(),
		ShipFailed: c.shipFailed.Load(), Collected: c.collected.Load(), Applied: c.applied.Load(),
		ApplyFailed: c.applyFailed.Load(), Duplicates: c.duplicates.Load(), Invalid: c.invalid.Load()}
}

// Flush waits until every write queued for the peers has been sent or given
// up, and every audit record has reached the AuditLog, or until ctx ends.
// Writes and batches arriving meanwhile are waited for too; writes waiting
// in the queue of a peer that is down, to be re-sent once it answers, are
// not.
func (s *Syncer) Flush(ctx context.Context) error {
	for {
		if (s.queues == nil || s.queues.idle()) && s.audit.idle() {
			return nil
		}
		if !wait.Sleep(ctx, time.Millisecond) {
			return fmt.Errorf("dcsync: flush: %w", ctx.Err())
		}
	}
}

// Close stops taking writes and batches, sends what is queued for the peers
// (a peer that keeps failing is left to the reconciler), flushes the audit
// queue, and closes the Senders. It does not close the AuditLog, the
// Processor or the Reship given in Config: they belong to the caller.
func (s *Syncer) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock() // waits for the Writes and Collects under way
		s.closed = true
		s.mu.Unlock()
		if s.queues != nil {
			s.queues.close()
		}
		s.audit.close()
		for name, sender := range s.peers {
			if err := sender.Close(); err != nil {
				errs = append(errs, fmt.Errorf("dcsync: close sender %s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}
