package dcsync

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Reship ships a write that entered here to every peer. Syncer's default
// keeps a bounded queue per peer over Config.Peers; the MQ wiring replaces it
// with a durable outbound stream (transport/redis).
type Reship interface {
	Reship(ctx context.Context, req *Request) error
}

// Sender delivers batches to one remote datacenter; each transport
// implements it. Send returns nil when the peer has accepted every request,
// a *BatchError naming the requests that failed when some did, and any other
// error when the whole batch failed. Send must be safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, reqs []*Request) error
	Close() error
}

// ErrQueueFull is returned by Write when a peer's queue stayed full until the
// context ended. The write was applied locally and recorded, so the
// reconciler still delivers it.
var ErrQueueFull = errors.New("dcsync: reship queue full")

// ErrPeerDown is recorded for writes not sent because their peer failed
// repeatedly; the reconciler delivers them once it is back.
var ErrPeerDown = errors.New("dcsync: peer unavailable, left to the reconciler")

// Delivery tunes the built-in Reship. The zero value of each field selects
// its default.
type Delivery struct {
	QueueSize int           // writes queued per peer; default 65536
	BatchSize int           // writes per Send; default 256
	Linger    time.Duration // wait for a batch to fill; default 1ms, negative for none
	// Workers is how many Sends per peer may be in flight at once, each
	// from a lane of its own; default 2. Writes to one Key always take the
	// same lane, so they reach the peer in the order they were written,
	// retries and repairs aside (ordering by Version is what converges).
	Workers int
	Timeout time.Duration // bound of one Send; default 10s
	Backoff Backoff       // retries of a failed Send
}

func (d Delivery) withDefaults() Delivery {
	d.QueueSize = or(d.QueueSize, 1<<16)
	d.BatchSize = or(d.BatchSize, 256)
	d.Linger = or(d.Linger, time.Millisecond)
	d.Workers = or(d.Workers, 2)
	d.Timeout = or(d.Timeout, 10*time.Second)
	d.Backoff = d.Backoff.withDefaults()
	return d
}

// shipper sends batches to peers with retries and records every attempt.
// The built-in Reship, Syncer.Forward and the Reconciler share it.
type shipper struct {
	dc      string
	timeout time.Duration
	backoff Backoff
	record  func(...Record)
}

// ship delivers reqs to peer through s, retrying the requests that failed
// with a retryable error, and returns each request's final error (nil when
// delivered). prior, when not nil, counts each request's earlier attempts,
// so that the records number every attempt of a write.
func (sh *shipper) ship(ctx context.Context, peer string, s Sender, reqs []*Request, prior []int) []error {
	errs := make([]error, len(reqs))
	pending := reqs
	index := make([]int, len(reqs)) // pending[i] is reqs[index[i]]
	for i := range index {
		index[i] = i
	}
	for try := 1; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, sh.timeout)
		err := s.Send(tctx, pending)
		cancel()
		now := time.Now()
		recs := getRecords()
		var retry []*Request
		var retryIndex []int
		for i, req := range pending {
			e := resultOf(err, i)
			errs[index[i]] = e
			rec := Record{ID: req.ID, DC: sh.dc, Origin: req.Origin, Stage: StageReship,
				Status: StatusOK, Target: peer, Attempt: try, Written: req.Time(), Time: now}
			if prior != nil {
				rec.Attempt += prior[index[i]]
			}
			if e != nil {
				rec.Status, rec.Error = StatusFailed, e.Error()
				if !IsPermanent(e) {
					retry = append(retry, req)
					retryIndex = append(retryIndex, index[i])
				}
			}
			*recs = append(*recs, rec)
		}
		sh.record(*recs...)
		putRecords(recs)
		if len(retry) == 0 || try >= sh.backoff.Attempts || !sleep(ctx, sh.backoff.Delay(try)) {
			return errs
		}
		pending, index = retry, retryIndex
	}
}

// queueReship is the built-in Reship: per peer, a bounded queue of lanes,
// each with a batching worker.
type queueReship struct {
	peers   []*peerQueue
	closing <-chan struct{} // closed when the Syncer starts closing
	wg      sync.WaitGroup
}

type peerQueue struct {
	pending atomic.Int64 // writes queued or being sent
	name    string
	sender  Sender
	lanes   []chan *Request
	seed    maphash.Seed // picks a key's lane
	cfg     Delivery
	ship    *shipper
	done    func(peer string, reqs []*Request, errs []error)

	mu        sync.Mutex
	downUntil time.Time // while in the future, batches skip sending
}

func newQueueReship(peers map[string]Sender, cfg Delivery, sh *shipper,
	done func(string, []*Request, []error), closing chan struct{}) *queueReship {
	q := &queueReship{closing: closing}
	for name, s := range peers {
		p := &peerQueue{name: name, sender: s, seed: maphash.MakeSeed(), cfg: cfg, ship: sh, done: done}
		q.peers = append(q.peers, p)
		for range cfg.Workers {
			lane := make(chan *Request, max(cfg.QueueSize/cfg.Workers, 1))
			p.lanes = append(p.lanes, lane)
			q.wg.Go(func() { p.work(lane) })
		}
	}
	return q
}

// lane returns the lane of writes to key.
func (p *peerQueue) lane(key string) chan *Request {
	if len(p.lanes) == 1 {
		return p.lanes[0]
	}
	return p.lanes[maphash.String(p.seed, key)%uint64(len(p.lanes))]
}

// Reship queues req for every peer. When a queue is full it blocks until
// there is room, the context ends (ErrQueueFull) or the Syncer closes.
func (q *queueReship) Reship(ctx context.Context, req *Request) error {
	for _, p := range q.peers {
		p.pending.Add(1)
		lane := p.lane(req.Key)
		select {
		case lane <- req:
			continue
		default:
		}
		select {
		case lane <- req:
		case <-ctx.Done():
			p.pending.Add(-1)
			return fmt.Errorf("%w for peer %s: %w", ErrQueueFull, p.name, ctx.Err())
		case <-q.closing:
			p.pending.Add(-1)
			return ErrClosed
		}
	}
	return nil
}

// idle reports whether every queued write has been sent or given up.
func (q *queueReship) idle() bool {
	for _, p := range q.peers {
		if p.pending.Load() != 0 {
			return false
		}
	}
	return true
}

// close sends what is queued and stops the workers. Callers must not call
// Reship after close.
func (q *queueReship) close() {
	for _, p := range q.peers {
		for _, lane := range p.lanes {
			close(lane)
		}
	}
	q.wg.Wait()
}

// work gathers batches from a lane and ships them until the lane closes.
func (p *peerQueue) work(lane chan *Request) {
	batch := make([]*Request, 0, p.cfg.BatchSize)
	var linger *time.Timer
	for {
		req, ok := <-lane
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		open := p.fill(lane, &batch, &linger)
		p.send(batch)
		if !open {
			return
		}
	}
}

// fill adds queued writes to batch until it is full, the lane is empty for
// the linger time, or the lane closes (then it returns false).
func (p *peerQueue) fill(lane chan *Request, batch *[]*Request, linger **time.Timer) bool {
	var expired <-chan time.Time
	for len(*batch) < p.cfg.BatchSize {
		select {
		case req, ok := <-lane:
			if !ok {
				return false
			}
			*batch = append(*batch, req)
			continue
		default:
		}
		if p.cfg.Linger <= 0 {
			return true
		}
		if expired == nil {
			if *linger == nil {
				*linger = time.NewTimer(p.cfg.Linger)
			} else {
				(*linger).Reset(p.cfg.Linger)
			}
			expired = (*linger).C
		}
		select {
		case req, ok := <-lane:
			if !ok {
				return false
			}
			*batch = append(*batch, req)
		case <-expired:
			return true
		}
	}
	return true
}

// send ships one batch, unless the peer is marked down: then the batch is
// recorded as failed and left to the reconciler, so a dead peer cannot hold
// up the queue and, behind it, the writers.
func (p *peerQueue) send(batch []*Request) {
	p.mu.Lock()
	down := time.Now().Before(p.downUntil)
	p.mu.Unlock()
	var errs []error
	if down {
		errs = make([]error, len(batch))
		now := time.Now()
		recs := make([]Record, len(batch))
		for i, req := range batch {
			errs[i] = ErrPeerDown
			recs[i] = Record{ID: req.ID, DC: p.ship.dc, Origin: req.Origin, Stage: StageReship,
				Status: StatusFailed, Target: p.name, Attempt: 1, Error: ErrPeerDown.Error(),
				Written: req.Time(), Time: now}
		}
		p.ship.record(recs...)
	} else {
		errs = p.ship.ship(context.Background(), p.name, p.sender, batch, nil)
		failed := 0
		for _, err := range errs {
			if err != nil && !IsPermanent(err) {
				failed++
			}
		}
		p.mu.Lock()
		if failed == len(batch) {
			p.downUntil = time.Now().Add(p.cfg.Backoff.Max)
		}
		p.mu.Unlock()
	}
	p.done(p.name, batch, errs)
	p.pending.Add(-int64(len(batch)))
}
