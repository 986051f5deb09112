package dcsync

import (
	"context"
	"errors"
	"time"

	"github.com/dcsync/dcsync/internal/wait"
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
	QueueSize int           // writes per peer waiting for or in a Send; default 65536
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
	obs     Observer // nil for none
}

// ship delivers reqs to peer through s, retrying the requests that failed
// with a retryable error, and returns each request's final error (nil when
// delivered). prior, when not nil, counts each request's earlier attempts,
// so that the records number every attempt of a write.
func (sh *shipper) ship(ctx context.Context, peer string, s Sender, reqs []*Request, prior []int) (errs []error) {
	if sh.obs != nil { // prior is the reconciler's
		ctx = sh.obs.SendStart(ctx, Send{Peer: peer, Reqs: reqs, Repair: prior != nil})
		defer func() { sh.obs.SendDone(ctx, Send{Peer: peer, Reqs: reqs, Repair: prior != nil}, errs) }()
	}
	errs = make([]error, len(reqs))
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
		if len(retry) == 0 || try >= sh.backoff.Attempts || !wait.Sleep(ctx, sh.backoff.Delay(try)) {
			return errs
		}
		pending, index = retry, retryIndex
	}
}
