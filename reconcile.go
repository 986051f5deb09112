package dcsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ReconcilerConfig wires a Reconciler. DC, Peers and Audit are required; the
// zero value of every other field selects its documented default.
type ReconcilerConfig struct {
	// DC is the datacenter whose writes this reconciler repairs.
	DC string
	// Peers reach the other datacenters, as in Config.Peers.
	Peers map[string]Sender
	// Audit is this datacenter's log: the trails of its writes are read
	// from it, and repairs recorded to it.
	Audit AuditLog
	// PeerAudit reads the peers' logs: the reconciler learns which of this
	// datacenter's writes a peer applied from PeerAudit[peer], by comparing
	// per-second digests first and reading IDs only where they differ. A
	// peer it does not name is read from Audit, which is the whole of it
	// when every datacenter appends to one shared log; with one log per
	// datacenter, name every peer's.
	PeerAudit map[string]AuditLog
	// Interval between passes of Run; default 1 minute.
	Interval time.Duration
	// Overlap is how far before the checkpoint a pass starts reading, for
	// records that reached the log late; default 1 minute.
	Overlap time.Duration
	// Grace keeps the newest writes, still on their way, out of a pass:
	// the window ends at now minus Grace. Default 30s; negative for none.
	// A write's time is read from its version, which runs ahead of the wall
	// clock by as much as the fastest peer's clock (see internal/hlc); such
	// a write is never lost — the checkpoint never passes the window's end —
	// but it is repaired only once the window reaches it, so Grace should
	// exceed the clock skew between datacenters.
	Grace time.Duration
	// Lookback is where the first pass starts, before any checkpoint;
	// default 1 hour.
	Lookback time.Duration
	// PageSize is how many trails a page of the audit log holds; default 1000.
	PageSize int
	// Backoff spaces the retries of one repair within a pass.
	Backoff Backoff
	// Timeout bounds one Send; default 10s.
	Timeout time.Duration
	// Lock makes one reconciler active per datacenter; nil means this one
	// always is.
	Lock LeaderLock
	// Checkpoints keeps where the last pass ended; nil keeps it in memory.
	Checkpoints CheckpointStore
	// Now reads the clock; default time.Now.
	Now func() time.Time
	// Logger receives the outcome of passes run by Run; default slog.Default().
	Logger *slog.Logger
	// Observer is told of every pass and repair; nil for none.
	Observer Observer
}

// LeaderLock elects one active reconciler per datacenter. Each contender
// holds a token of its own; the Redis implementation is in transport/redis.
type LeaderLock interface {
	// Acquire takes the lock for token, or extends it when token already
	// holds it, for ttl. It reports whether token holds the lock.
	Acquire(ctx context.Context, token string, ttl time.Duration) (bool, error)
	// Release gives the lock up if token holds it.
	Release(ctx context.Context, token string) error
}

// CheckpointStore keeps, per datacenter, the time up to which every write
// is known complete, so a pass reads only the window after it.
type CheckpointStore interface {
	// Load returns the checkpoint of dc, or the zero time when there is none.
	Load(ctx context.Context, dc string) (time.Time, error)
	// Save stores the checkpoint of dc.
	Save(ctx context.Context, dc string, t time.Time) error
}

// Report says what one pass found and did.
type Report struct {
	From, To time.Time // the window read, by time written at the origin
	Leader   bool      // false when another reconciler holds the lock: nothing was read
	Scanned  int       // writes in the window
	Complete int       // writes already applied in every peer
	Repaired int       // writes this pass delivered to every peer that missed them
	Failing  int       // writes still missing somewhere after this pass
	Rejected int       // writes whose processing at the origin failed: never replicated
	Orphaned int       // trails with no source record to repair from: lost unless found elsewhere; logged at error level
	Sent     int       // deliveries (write × peer) this pass made
	// What the pass could not see or do; a pass with any of these is not
	// a clean bill of health.
	Future      int // writes dated more than FutureMargin after the pass's end (a clock ahead): outside every window until it catches up
	SkewRefused int // deliveries refused by a peer because the write's version was too far ahead of its clock
	Unreadable  int // records the audit log holds but could not decode
}

// Reconciler finds writes of its datacenter that some peer has not applied,
// from the audit log, and delivers them again.
type Reconciler struct {
	cfg   ReconcilerConfig
	token string
	ship  *shipper

	mu         sync.Mutex // serialises passes
	checkpoint time.Time  // used when cfg.Checkpoints is nil
}

// NewReconciler returns a Reconciler for cfg.DC.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.DC == "" || cfg.Audit == nil {
		return nil, errors.New("dcsync: ReconcilerConfig needs DC and Audit")
	}
	cfg.Interval = or(cfg.Interval, time.Minute)
	cfg.Overlap = or(cfg.Overlap, time.Minute)
	cfg.Grace = or(cfg.Grace, 30*time.Second)
	cfg.Lookback = or(cfg.Lookback, time.Hour)
	cfg.PageSize = or(cfg.PageSize, 1000)
	cfg.Backoff = cfg.Backoff.withDefaults()
	cfg.Timeout = or(cfg.Timeout, 10*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Logger = or(cfg.Logger, slog.Default())
	r := &Reconciler{cfg: cfg, token: uuid.NewString()}
	r.ship = &shipper{dc: cfg.DC, timeout: cfg.Timeout, backoff: cfg.Backoff, obs: cfg.Observer}
	return r, nil
}

// Run runs a pass at once and then every Interval until ctx ends, and
// releases the leader lock on the way out. It returns ctx's error.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		rep, err := r.RunOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.Logger.Error("dcsync: reconcile pass failed", "dc", r.cfg.DC, "err", err)
		case rep.Leader:
			r.cfg.Logger.Info("dcsync: reconcile pass", "dc", r.cfg.DC, "scanned", rep.Scanned,
				"repaired", rep.Repaired, "failing", rep.Failing)
		}
		select {
		case <-ctx.Done():
			if r.cfg.Lock != nil {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = r.cfg.Lock.Release(ctx, r.token)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RunOnce runs one pass: it reads the trails of this datacenter's writes in
// the window from the checkpoint (minus Overlap) to now (minus Grace),
// re-sends every write to every peer with no ok apply record, and moves the
// checkpoint to the end of the window, or to the oldest write still failing.
func (r *Reconciler) RunOnce(ctx context.Context) (rep Report, err error) {
	if r.cfg.Observer != nil {
		defer func() { r.cfg.Observer.ReconcileDone(ctx, r.cfg.DC, rep, err) }()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.Lock != nil {
		ok, err := r.cfg.Lock.Acquire(ctx, r.token, 3*r.cfg.Interval)
		if err != nil {
			return rep, fmt.Errorf("dcsync: leader lock: %w", err)
		}
		if !ok {
			return rep, nil
		}
	}
	rep.Leader = true
	cp, err := r.loadCheckpoint(ctx)
	if err != nil {
		return rep, err
	}
	now := r.cfg.Now()
	rep.From, rep.To = cp.Add(-r.cfg.Overlap), now.Add(-max(r.cfg.Grace, 0))
	if cp.IsZero() {
		rep.From = now.Add(-r.cfg.Lookback)
	}
	if !rep.To.After(rep.From) {
		return rep, nil
	}
	oldestFailing, err := r.pass(ctx, &rep)
	if err != nil {
		return rep, err
	}
	if err := r.countFuture(ctx, &rep); err != nil {
		return rep, err
	}
	if rep.Orphaned > 0 {
		r.cfg.Logger.Error("dcsync: writes with no source record: the reconciler cannot repair them", "dc", r.cfg.DC,
			"orphaned", rep.Orphaned, "from", rep.From, "to", rep.To)
	}
	return rep, r.saveCheckpoint(ctx, oldestFailing)
}

// peerLog returns the log that holds what peer applied.
func (r *Reconciler) peerLog(peer string) AuditLog {
	if l := r.cfg.PeerAudit[peer]; l != nil {
		return l
	}
	return r.cfg.Audit
}

// pass compares, second by second of rep's window, the digest of this
// datacenter's processed writes with the digest of each peer's applied
// ones; it reads the trails of a second, and the IDs the peers applied in
// it, only where the two differ, and repairs what they show missing. It
// returns the written time of the oldest write still failing, or the end
// of the window.
func (r *Reconciler) pass(ctx context.Context, rep *Report) (time.Time, error) {
	oldestFailing := rep.To
	q := SetQuery{DC: r.cfg.DC, Origin: r.cfg.DC, Stage: StageProcess, From: rep.From, To: rep.To}
	own, err := r.cfg.Audit.Digests(ctx, q)
	if err != nil {
		return oldestFailing, fmt.Errorf("dcsync: read digests: %w", err)
	}
	q.Status = StatusFailed
	rejected, err := r.cfg.Audit.Digests(ctx, q)
	if err != nil {
		return oldestFailing, fmt.Errorf("dcsync: read digests: %w", err)
	}
	for _, d := range rejected {
		rep.Scanned += d.Count
		rep.Rejected += d.Count
	}
	mine := make(map[int64]Digest, len(own))
	for _, d := range own {
		mine[d.Second] = d
	}
	differ := map[int64][]string{} // second → the peers whose digest differs
	for peer := range r.cfg.Peers {
		applied, err := r.peerLog(peer).Digests(ctx, SetQuery{DC: peer, Origin: r.cfg.DC, Stage: StageApply,
			From: rep.From, To: rep.To})
		if err != nil {
			return oldestFailing, fmt.Errorf("dcsync: read digests of %s: %w", peer, err)
		}
		theirs := make(map[int64]bool, len(applied))
		for _, d := range applied {
			theirs[d.Second] = true
			if mine[d.Second] != d {
				differ[d.Second] = append(differ[d.Second], peer)
			}
		}
		for sec := range mine {
			if !theirs[sec] {
				differ[sec] = append(differ[sec], peer)
			}
		}
	}
	for sec, d := range mine {
		if _, ok := differ[sec]; !ok {
			rep.Scanned += d.Count
			rep.Complete += d.Count
		}
	}
	for _, sec := range slices.Sorted(maps.Keys(differ)) {
		failing, err := r.second(ctx, sec, differ[sec], rep)
		if err != nil {
			return oldestFailing, err
		}
		if !failing.IsZero() && failing.Before(oldestFailing) {
			oldestFailing = failing
		}
	}
	return oldestFailing, nil
}

// second reads the trails of this datacenter's writes accepted in second
// sec and what peers applied of them, and repairs what they miss. Peers
// not named applied every write of the second.
func (r *Reconciler) second(ctx context.Context, sec int64, peers []string, rep *Report) (time.Time, error) {
	from, to := time.Unix(sec, 0), time.Unix(sec+1, 0)
	if from.Before(rep.From) { // the window cuts the second
		from = rep.From
	}
	if to.After(rep.To) {
		to = rep.To
	}
	applied := make(map[string]map[string]bool, len(peers))
	for _, peer := range peers {
		ids, err := r.peerLog(peer).IDs(ctx, SetQuery{DC: peer, Origin: r.cfg.DC, Stage: StageApply, From: from, To: to})
		if err != nil {
			return time.Time{}, fmt.Errorf("dcsync: read what %s applied: %w", peer, err)
		}
		set := make(map[string]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		applied[peer] = set
	}
	var oldest time.Time
	q := TrailQuery{Origin: r.cfg.DC, From: from, To: to, Limit: r.cfg.PageSize}
	for {
		page, err := r.cfg.Audit.Trails(ctx, q)
		if err != nil {
			return oldest, fmt.Errorf("dcsync: read trails: %w", err)
		}
		rep.Unreadable += page.Unreadable
		if failing := r.repair(ctx, page.Trails, peers, applied, rep); !failing.IsZero() &&
			(oldest.IsZero() || failing.Before(oldest)) {
			oldest = failing
		}
		if page.Next == "" {
			return oldest, nil
		}
		q.After = page.Next
	}
}

// FutureMargin is how far past the end of a pass a write must be dated
// for Report.Future to count it: writes made while the pass ran, and the
// ordinary drift of clocks, stay under it.
const FutureMargin = time.Minute

// countFuture counts the writes dated more than FutureMargin past now,
// which no window holds until the clock reaches them.
func (r *Reconciler) countFuture(ctx context.Context, rep *Report) error {
	from := r.cfg.Now().Add(FutureMargin)
	q := TrailQuery{Origin: r.cfg.DC, From: from, To: from.Add(100 * 365 * 24 * time.Hour), Limit: r.cfg.PageSize}
	for {
		page, err := r.cfg.Audit.Trails(ctx, q)
		if err != nil {
			return fmt.Errorf("dcsync: read future trails: %w", err)
		}
		rep.Future += len(page.Trails)
		if page.Next == "" {
			return nil
		}
		q.After = page.Next
	}
}

// isSkew reports whether a delivery failed because the peer found the
// write's version too far ahead of its clock. Over the RPC transports the
// refusal arrives as its own result code, which the senders map back to
// ErrClockSkew.
func isSkew(err error) bool { return errors.Is(err, ErrClockSkew) }

// repair re-sends the writes of trails that some of peers misses, and
// returns the written time of the oldest write it could not complete (zero
// if none). applied holds, per peer, the IDs its log says it applied.
func (r *Reconciler) repair(ctx context.Context, trails []Trail, peers []string, applied map[string]map[string]bool, rep *Report) time.Time {
	type delivery struct {
		reqs  []*Request
		prior []int
	}
	missing := map[string]*delivery{}
	var recs []Record
	r.ship.record = func(rs ...Record) { recs = append(recs, rs...) }
	incomplete := map[string]*Request{}
	for i := range trails {
		t := &trails[i]
		src := t.Source()
		if src == nil {
			if t.Attempts(r.cfg.DC, StageProcess, "") == 0 {
				rep.Scanned++
				rep.Orphaned++
			} // else rejected: counted from the digests
			continue
		}
		rep.Scanned++
		complete := true
		for _, peer := range peers {
			if applied[peer][t.ID] || t.Applied(peer) {
				continue
			}
			complete = false
			d := missing[peer]
			if d == nil {
				d = &delivery{}
				missing[peer] = d
			}
			d.reqs = append(d.reqs, src)
			d.prior = append(d.prior, t.Attempts(r.cfg.DC, StageReship, peer))
			incomplete[src.ID] = src
		}
		if complete {
			rep.Complete++
		}
	}
	failed := map[string]bool{}
	for peer, d := range missing {
		for start := 0; start < len(d.reqs); start += DefaultMaxBatch / 4 {
			end := min(start+DefaultMaxBatch/4, len(d.reqs))
			errs := r.ship.ship(ctx, peer, r.cfg.Peers[peer], d.reqs[start:end], d.prior[start:end])
			for i, err := range errs {
				rep.Sent++
				if err != nil {
					failed[d.reqs[start+i].ID] = true
					if isSkew(err) {
						rep.SkewRefused++
					}
				}
			}
		}
	}
	var oldest time.Time
	for id, req := range incomplete {
		if !failed[id] {
			rep.Repaired++
			continue
		}
		rep.Failing++
		if oldest.IsZero() || req.Time().Before(oldest) {
			oldest = req.Time()
		}
	}
	if len(recs) > 0 {
		var p packer
		p.add(recs)
		if err := r.cfg.Audit.Append(ctx, p.entries); err != nil {
			r.cfg.Logger.Warn("dcsync: audit append of repairs failed", "dc", r.cfg.DC, "err", err)
		}
	}
	return oldest
}

func (r *Reconciler) loadCheckpoint(ctx context.Context) (time.Time, error) {
	if r.cfg.Checkpoints == nil {
		return r.checkpoint, nil
	}
	t, err := r.cfg.Checkpoints.Load(ctx, r.cfg.DC)
	if err != nil {
		return t, fmt.Errorf("dcsync: load checkpoint: %w", err)
	}
	return t, nil
}

func (r *Reconciler) saveCheckpoint(ctx context.Context, t time.Time) error {
	if r.cfg.Checkpoints == nil {
		r.checkpoint = t
		return nil
	}
	if err := r.cfg.Checkpoints.Save(ctx, r.cfg.DC, t); err != nil {
		return fmt.Errorf("dcsync: save checkpoint: %w", err)
	}
	return nil
}
