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

// WriteAheadReship is a Reship that is the write-ahead log of the writes
// it takes: its own workers apply each write here (package hop's Apply) as
// they ship it to the peers. Write checks Config.Reship for it, as net/http
// checks a ResponseWriter for http.Flusher: given one, Write hands the
// write over without applying it, and returns once the Reship has it. A
// write is then never applied here and not queued for the peers, and an
// error from Write means it was applied nowhere (see Syncer.Write). The
// MQ wirings' Nodes (transport/redis, transport/kafka) are ones.
//
// It is a property of the Reship rather than a Config flag because only
// the Reship knows whether its workers apply: a flag could promise it of a
// Reship that never applies — its writes would be applied nowhere — or be
// left off one that does, applying every write twice.
type WriteAheadReship interface {
	Reship
	// WritesAhead marks the promise above; it is never called.
	WritesAhead()
}

// Sender delivers batches to one remote datacenter; each transport
// implements it. Send returns nil when the peer has accepted every request,
// a *BatchError naming the requests that failed when some did, and any other
// error when the whole batch failed. Send must be safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, reqs []*Request) error
	Close() error
}

// Pipeliner is a Sender that keeps several batches in flight to its peer
// and has them applied in order. The built-in Reship gives each lane a Pipe
// of its own and keeps on it as many batches in flight as the peer's window
// allows (see Delivery.Window); on a Sender that is not a Pipeliner, or
// whose Pipe returns nil, a lane has one batch in flight at a time.
type Pipeliner interface {
	Sender
	// Pipe returns an ordered way to the peer, or nil when the Sender
	// cannot keep order: batches begun on one Pipe, one after the other,
	// are applied by the peer in that order.
	Pipe() Pipe
}

// Pipe carries batches to one peer in order; see Pipeliner. A Pipe is used
// by one goroutine at a time.
type Pipe interface {
	// Begin puts reqs on their way within ctx and returns once their
	// place in the order is taken; wait then waits for the peer's answer
	// and returns what Sender.Send would have.
	Begin(ctx context.Context, reqs []*Request) (wait func() error)
}

// Delivery tunes the built-in Reship. The zero value of each field selects
// its default.
type Delivery struct {
	QueueSize int           // writes per peer waiting for or in a Send; default 65536
	BatchSize int           // writes per Send; default 256
	Linger    time.Duration // wait for a batch to fill; default 1ms, negative for none
	// Workers is how many lanes each peer's queue has, each with a worker
	// of its own; default 2. Writes to one Key always take the same lane,
	// so they reach the peer in the order they were written, retries and
	// repairs aside (ordering by Version is what converges). Over a
	// Pipeliner a lane keeps several batches in flight, as many as the
	// window allows; over another Sender, one.
	Workers int
	// Window bounds the bytes of writes in flight to one peer, over all
	// its lanes; default 16 MiB. Within it the window follows the link: it
	// grows while the round trips stay close to the shortest seen and
	// writes wait for room, and shrinks when they lengthen (the peer
	// queues). A lane may always have one batch in flight. Carrying R
	// writes/s of S bytes over a round trip T needs R·S·T bytes: 250,000
	// writes/s of 300 bytes over 40 ms is 3 MB.
	Window  int
	Timeout time.Duration // bound of one Send; default 10s
	Backoff Backoff       // retries of a failed Send
	// Probe bounds the time between two tries of a peer marked down; its
	// writes wait in its queue meanwhile and are re-sent, in order, as
	// soon as a try succeeds. Default 1s. Negative keeps no retry queue:
	// a batch that failed whole is left to the reconciler at once, and a
	// peer marked down is tried again after Backoff.
	Probe time.Duration
}

func (d Delivery) withDefaults() Delivery {
	d.QueueSize = or(d.QueueSize, 1<<16)
	d.BatchSize = or(d.BatchSize, 256)
	d.Linger = or(d.Linger, time.Millisecond)
	d.Workers = or(d.Workers, 2)
	d.Timeout = or(d.Timeout, 10*time.Second)
	d.Window = or(d.Window, 16<<20)
	d.Backoff = d.Backoff.withDefaults()
	d.Probe = or(d.Probe, time.Second)
	return d
}

// shipper sends batches to peers with retries and records every attempt.
// The built-in Reship, the reship hop (package hop) and the Reconciler
// share it.
type shipper struct {
	dc      string
	timeout time.Duration
	backoff Backoff
	record  func(...Record)
	// batch, when set, records the ok records of a whole batch's first
	// try at once (see auditQueue.addBatch).
	batch func(rec Record, reqs []*Request)
	obs   Observer // nil for none
}

// ship delivers reqs to peer through s, retrying the requests that failed
// with a retryable error, and returns each request's final error (nil when
// delivered). prior, when not nil, counts each request's earlier attempts,
// so that the records number every attempt of a write.
func (sh *shipper) ship(ctx context.Context, peer string, s Sender, reqs []*Request, prior []int) []error {
	errs, _ := sh.shipFrom(ctx, peer, s, reqs, prior, nil, sh.backoff.Attempts)
	return errs
}

// shipFrom is ship with first, when not nil, waiting for the first try
// (begun on a Pipe), and at most attempts tries. It also reports whether
// the last try failed whole with a retryable error: the peer could not be
// reached, or would not take the batch for now.
func (sh *shipper) shipFrom(ctx context.Context, peer string, s Sender, reqs []*Request, prior []int,
	first func() error, attempts int) (errs []error, down bool) {
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
		var err error
		if try == 1 && first != nil {
			err = first()
		} else {
			tctx, cancel := context.WithTimeout(ctx, sh.timeout)
			err = s.Send(tctx, pending)
			cancel()
		}
		now := time.Now()
		if err == nil && prior == nil && sh.batch != nil && sameOrigin(pending) { // every request delivered
			sh.batch(Record{DC: sh.dc, Origin: pending[0].Origin, Stage: StageReship, Status: StatusOK,
				Target: peer, Attempt: try, Time: now}, pending)
			for _, i := range index {
				errs[i] = nil // of an earlier try
			}
			return errs, false
		}
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
		var be *BatchError
		down = err != nil && !IsPermanent(err) && !errors.As(err, &be)
		if len(retry) == 0 || try >= attempts || !wait.Sleep(ctx, sh.backoff.Delay(try)) {
			return errs, down
		}
		pending, index = retry, retryIndex
	}
}

// sameOrigin reports whether reqs, at least one, entered in one datacenter.
func sameOrigin(reqs []*Request) bool {
	for _, r := range reqs {
		if r.Origin != reqs[0].Origin {
			return false
		}
	}
	return len(reqs) > 0
}
