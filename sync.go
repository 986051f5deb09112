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
	// bounded queues over Peers, tuned by Delivery. A WriteAheadReship
	// (the MQ wirings' Nodes) makes Write write-ahead through it.
	Reship Reship
	// Delivery tunes the built-in Reship.
	Delivery Delivery
	// Dedupe remembers applied writes; nil selects a MemoryDedupe. Share one
	// store between all collectors of a datacenter.
	Dedupe DedupeStore
	// Limits bounds accepted writes and batches.
	Limits Limits
	// MaxSkew refuses collected and applied writes whose version is more
	// than MaxSkew ahead of the local wall clock (ErrClockSkew, which
	// senders retry, counted in Stats.Skewed), so one datacenter's runaway
	// clock — or a peer sending a version of 2^64-1 — cannot drag every
	// datacenter's versions into the future and win every later write.
	// Default DefaultMaxSkew; negative accepts any version (the clock still
	// never wraps: versions past hlc's ceiling are refused as invalid).
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
	// Journal, when set, makes writes durable before they are applied:
	// Write appends each write to it first, and New re-drives what it
	// holds from before a crash (see Journal and docs/durability.md).
	// Without one, a write applied here and not yet shipped is lost to
	// the peers if the process dies, until a Reconciler finds its trail.
	// With a WriteAheadReship the Reship is the write-ahead log and the
	// Journal is not written. The Syncer does not close it.
	Journal Journal
	// JournalRedrive is, with a Journal, how long a write may stay
	// unacknowledged by a peer before it is queued for it again, and how
	// often that is checked; default 1 minute, negative for never.
	JournalRedrive time.Duration
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
	Skewed      uint64 // collected or applied writes refused: version beyond MaxSkew
	AuditFull   uint64 // writes that waited because the audit log was full of incomplete writes

	// Batches a transport refused as a whole before the Collector saw
	// them, by reason (see SECURITY.md).
	RefusedUnauthenticated uint64 // unknown peer, bad signature, stale stamp, replay
	RefusedInvalid         uint64 // malformed stamp, body or batch; unsupported encoding
	RefusedTooLarge        uint64 // body or batch over the limits

	// Peers is the delivery status of each peer.
	Peers map[string]PeerStats

	AuditQueued  int    // audit records waiting for the AuditLog, queued or held while it is full
	AuditDropped uint64 // audit records given up because the AuditLog failed to take them
}

// DefaultMaxSkew is Config.MaxSkew's default: how far ahead of the local
// wall clock a collected write's version may be.
const DefaultMaxSkew = time.Minute

// Syncer is one datacenter's end of dcsync: Write takes local writes, the
// Collector takes writes from peers. It is safe for concurrent use.
type Syncer struct {
	dc      string
	peers   map[string]Sender
	proc    Processor
	dedupe  DedupeStore
	limits  Limits
	maxSkew time.Duration
	clock   hlc.Clock
	log     *slog.Logger
	audit   *auditQueue
	reship  Reship
	queues  *queueReship // the built-in Reship, nil when Config.Reship is set
	ahead   bool         // the Reship is a WriteAheadReship
	ship    *shipper
	obs     Observer
	journal Journal

	stopRecovery context.CancelFunc
	recovered    chan struct{} // closed when the journal's recovery ended
	redriving    chan struct{} // closed when the journal's redrive loop ended
	recovery     Recovery
	recoveryErr  error

	mu        sync.RWMutex // held shared by Write and Collect, exclusive by Close
	closed    bool
	closing   chan struct{} // closed first by Close, to release blocked writers
	closeOnce sync.Once

	refusalLogged atomic.Int64 // Unix nanoseconds of the last refusal logged

	waiting atomic.Int64 // number of registered waiters
	waitMu  sync.Mutex
	waiters map[string]*waiter

	stats struct {
		written, rejected, shipped, shipFailed, collected,
		applied, applyFailed, duplicates, invalid atomic.Uint64
		skewed, refusedAuth, refusedInvalid, refusedLarge atomic.Uint64
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
		dedupe:  cfg.Dedupe,
		limits:  cfg.Limits.withDefaults(),
		maxSkew: or(cfg.MaxSkew, DefaultMaxSkew),
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
		declarePeers(cfg)
		s.audit = newAuditQueue(cfg.Audit, or(cfg.AuditQueue, 1<<16), time.Millisecond, func(err error) {
			s.log.Error("dcsync: audit append failed", "dc", s.dc, "err", err)
		})
	}
	d := cfg.Delivery.withDefaults()
	s.ship = &shipper{dc: s.dc, timeout: d.Timeout, backoff: d.Backoff, record: s.audit.add, batch: s.audit.addBatch, obs: s.obs}
	s.reship = cfg.Reship
	_, s.ahead = cfg.Reship.(WriteAheadReship)
	if s.reship == nil {
		s.queues = newQueueReship(cfg.Peers, d, s.ship, s.delivered, s.closing)
		s.reship = s.queues
	}
	if cfg.Journal != nil {
		s.journal = cfg.Journal
		entries, err := s.journal.Recover(peerNames(cfg.Peers))
		if err != nil {
			s.abandon()
			return nil, fmt.Errorf("dcsync: journal: %w", err)
		}
		s.startRecovery(entries, or(cfg.JournalRedrive, time.Minute))
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
// unless an option asks it to wait for them. With a Journal, the write is
// in the journal before it is applied, and so survives a crash of the
// process from then on (see Config.Journal).
//
// What an error means:
//   - an error matching ErrNotReplicated: the write was applied here, and
//     is queued (or, with a Journal, journaled) for the peers; it was not
//     acknowledged by the peers a WaitAll or WaitQuorum asked for before
//     ctx ended or they failed, or it could not be queued before ctx ended
//     or the Syncer closed. The journal, the sender's retries or the
//     Reconciler go on delivering it: do not retry it as a new write.
//   - any other error: the write was applied nowhere and will not be. That
//     covers an invalid request (ErrInvalid), a closed Syncer (ErrClosed),
//     ctx ending while the audit log is full (ErrAuditFull) or its queue
//     is (ErrAuditBusy), a failed journal append, and a failed local
//     apply, the Processor's own error (or ErrPanic) wrapped, which is
//     recorded rejected and never shipped. One exception: when the Journal fails to record the
//     rejection, the error says so, and the write may be applied when the
//     journal is recovered.
//
// If the process dies before Write returns, the write is applied and
// replicated when the journal is recovered if it reached the journal, and
// otherwise is applied nowhere; without a Journal it may be applied here
// only, until a Reconciler repairs it from its trail.
//
// With a WriteAheadReship, Write returns once the Reship has the write,
// and the Reship's workers apply it here later, as they ship it: an error
// then means the write was applied nowhere, unless it wraps ctx's error
// (the Reship may have taken it; writing it again with the same ID is
// safe) or matches ErrNotReplicated (the Reship has it; a wait for the
// peers failed).
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
	if err := s.audit.wait(ctx, s.closing); err != nil { // the audit log is full of incomplete writes
		return fmt.Errorf("dcsync: write not taken: %w", err)
	}
	shard, err := s.audit.room(ctx) // the audit queue is full: its log is slow
	if err != nil {
		return fmt.Errorf("dcsync: write not taken: %w", err)
	}
	if s.obs != nil {
		ctx = s.obs.WriteStart(ctx, req)
		defer func() { s.obs.WriteDone(ctx, req, err) }()
	}
	if s.ahead {
		return s.queue(ctx, req, opts, false) // the Reship's workers apply it (package hop)
	}
	// The version's clock reading dates the record: one clock read a write.
	rec := Record{ID: req.ID, DC: s.dc, Origin: s.dc, Stage: StageProcess, Status: StatusOK,
		Attempt: 1, Written: req.Time(), Time: req.Time()}
	if s.journal != nil {
		if err := s.journal.Append(req); err != nil {
			return fmt.Errorf("dcsync: journal %s: %w", req.ID, err)
		}
	}
	if err := s.processLocal(ctx, req); err != nil {
		s.stats.rejected.Add(1)
		rec.Status, rec.Error = StatusFailed, err.Error()
		s.audit.addTo(shard, rec)
		err = fmt.Errorf("dcsync: process %s: %w", req.ID, err)
		if s.journal != nil {
			if jerr := s.journal.Rejected(req.ID); jerr != nil {
				err = fmt.Errorf("%w; and the journal failed to record it rejected, so recovery may apply it: %w", err, jerr)
			}
		}
		return err
	}
	if s.journal != nil {
		s.journal.Applied(req.ID)
	}
	s.stats.written.Add(1)
	rec.Request = req
	s.audit.addTo(shard, rec)

	return s.queue(ctx, req, opts, true)
}

// queue hands req, stamped, to the Reship and, when opts ask, waits for the
// peers' acknowledgements.
func (s *Syncer) queue(ctx context.Context, req *Request, opts []WriteOption, applied bool) error {
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
		if !applied {
			return err // applied nowhere, as WriteAheadReship says
		}
		return fmt.Errorf("%w: %s applied here, not queued for the peers: %w", ErrNotReplicated, req.ID, err)
	}
	s.shipped(req)
	if w == nil {
		return nil
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %s applied here, not acknowledged by enough peers before the context ended: %w",
			ErrNotReplicated, req.ID, ctx.Err())
	case <-s.closing:
		return fmt.Errorf("%w: %s applied here, not acknowledged by enough peers before the syncer closed: %w",
			ErrNotReplicated, req.ID, ErrClosed)
	}
}

// forward delivers reqs, written here, to peer through sender, or through
// the peer's own Sender when sender is nil, retrying with the Delivery
// backoff and recording every attempt, and returns each request's final
// error: package hop's Ship, the MQ wirings' reship hop. Write's built-in
// Reship does the same internally.
func (s *Syncer) forward(ctx context.Context, peer string, sender Sender, reqs []*Request) []error {
	own, ok := s.peers[peer]
	if !ok {
		return fill(make([]error, len(reqs)), fmt.Errorf("%w: %q", ErrUnknownPeer, peer))
	}
	if sender == nil {
		sender = own
	}
	errs := s.ship.ship(ctx, peer, sender, reqs, nil)
	s.delivered(peer, reqs, errs)
	return errs
}

// fill sets every element of errs to err and returns errs.
func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
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
	s.journalAcked(peer, reqs, errs, failed)
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
		ApplyFailed: c.applyFailed.Load(), Duplicates: c.duplicates.Load(), Invalid: c.invalid.Load(),
		Skewed: c.skewed.Load(), AuditFull: s.auditWaits(), RefusedUnauthenticated: c.refusedAuth.Load(),
		RefusedInvalid: c.refusedInvalid.Load(), RefusedTooLarge: c.refusedLarge.Load(),
		Peers: s.peerStats(), AuditQueued: s.audit.depth(), AuditDropped: s.audit.dropCount()}
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

// Close is Shutdown without a deadline: it drains what is queued for the
// peers, each write until it is delivered or its retries are spent.
func (s *Syncer) Close() error { return s.Shutdown(context.Background()) }
