package dcsync

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// queueReship is the built-in Reship: per peer, a bounded queue split in
// lanes, each with a batching worker.
type queueReship struct {
	peers   []*peerQueue
	closing <-chan struct{} // closed when the Syncer starts closing
	wg      sync.WaitGroup
	stop    context.CancelFunc // ends the sends under way, when a shutdown runs out of time
}

type peerQueue struct {
	name   string
	sender Sender
	lanes  []*lane
	seed   maphash.Seed // picks a key's lane
	cfg    Delivery
	ship   *shipper
	done   func(peer string, reqs []*Request, errs []error)
	ctx    context.Context // of the sends; ended by queueReship.stop

	mu        sync.Mutex
	downs     int       // batches in a row that failed whole, every attempt
	downUntil time.Time // while in the future, batches skip sending
	downSince time.Time // first failure of the current run of downs; zero when up
}

// lane is a FIFO of writes and the worker that sends them in batches. A
// writer takes its lock to append; the worker wakes when the lane becomes
// non-empty and when it holds a full batch, not for every write, and takes
// everything queued at once.
type lane struct {
	mu     sync.Mutex
	reqs   []*Request    // queued, oldest first
	held   int           // queued, or taken by the worker and not yet sent
	limit  int           // of held
	space  chan struct{} // closed when held falls below limit; nil when nobody waits
	closed bool
	ready  chan struct{} // capacity 1: the worker has something to do
}

func newQueueReship(peers map[string]Sender, cfg Delivery, sh *shipper,
	done func(string, []*Request, []error), closing chan struct{}) *queueReship {
	ctx, stop := context.WithCancel(context.Background())
	q := &queueReship{closing: closing, stop: stop}
	for name, s := range peers {
		p := &peerQueue{name: name, sender: s, seed: maphash.MakeSeed(), cfg: cfg, ship: sh, done: done, ctx: ctx}
		q.peers = append(q.peers, p)
		for range cfg.Workers {
			l := &lane{limit: max(cfg.QueueSize/cfg.Workers, 1), ready: make(chan struct{}, 1)}
			p.lanes = append(p.lanes, l)
			q.wg.Go(func() { p.work(l) })
		}
	}
	return q
}

// lane returns the lane of writes to key.
func (p *peerQueue) lane(key string) *lane {
	if len(p.lanes) == 1 {
		return p.lanes[0]
	}
	return p.lanes[maphash.String(p.seed, key)%uint64(len(p.lanes))]
}

// Reship queues req for every peer. When a queue is full it blocks until
// there is room, the context ends (ErrQueueFull) or the Syncer closes.
func (q *queueReship) Reship(ctx context.Context, req *Request) error {
	for _, p := range q.peers {
		if err := p.lane(req.Key).push(ctx, req, p.cfg.BatchSize, q.closing); err != nil {
			if err == ErrClosed {
				return err
			}
			return fmt.Errorf("%w for peer %s: %w", ErrQueueFull, p.name, err)
		}
	}
	return nil
}

// push appends req, waiting while the lane is full. It returns ctx's error
// or ErrClosed when it gave up.
func (l *lane) push(ctx context.Context, req *Request, batch int, closing <-chan struct{}) error {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		if l.held < l.limit {
			l.reqs = append(l.reqs, req)
			l.held++
			n := len(l.reqs)
			l.mu.Unlock()
			if n == 1 || n == batch {
				l.signal()
			}
			return nil
		}
		if l.space == nil {
			l.space = make(chan struct{})
		}
		space := l.space
		l.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-closing:
			return ErrClosed
		}
	}
}

func (l *lane) signal() {
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

// sent releases n writes the worker has sent, making room for writers.
func (l *lane) sent(n int) {
	l.mu.Lock()
	l.held -= n
	if l.space != nil {
		close(l.space)
		l.space = nil
	}
	l.mu.Unlock()
}

// idle reports whether every queued write has been sent or given up.
func (q *queueReship) idle() bool {
	for _, p := range q.peers {
		for _, l := range p.lanes {
			l.mu.Lock()
			held := l.held
			l.mu.Unlock()
			if held != 0 {
				return false
			}
		}
	}
	return true
}

// close sends what is queued and stops the workers, or, when ctx ends
// first, ends the sends under way, so that the workers record what is left
// as failed at once, and returns how many deliveries were left. Callers
// must not call Reship after close.
func (q *queueReship) close(ctx context.Context) (left int) {
	for _, p := range q.peers {
		for _, l := range p.lanes {
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
			l.signal()
		}
	}
	select {
	case <-background(q.wg.Wait):
		q.stop()
		return 0
	case <-ctx.Done():
	}
	left = q.held()
	q.stop()
	return left
}

// work sends l's writes in batches until l closes and is empty: it waits
// for a first write, then up to the linger time for a batch to fill, then
// takes all that is queued and sends it BatchSize at a time.
func (p *peerQueue) work(l *lane) {
	var taken []*Request
	var linger *time.Timer
	for {
		<-l.ready
		l.mu.Lock()
		n, closed := len(l.reqs), l.closed
		l.mu.Unlock()
		if n == 0 && closed {
			return
		}
		if n > 0 && n < p.cfg.BatchSize && p.cfg.Linger > 0 && !closed {
			if linger == nil {
				linger = time.NewTimer(p.cfg.Linger)
			} else {
				linger.Reset(p.cfg.Linger)
			}
			select {
			case <-linger.C:
			case <-l.ready: // a full batch, or closing
				linger.Stop()
			}
		}
		l.mu.Lock()
		taken, l.reqs = l.reqs, taken[:0]
		closed = l.closed
		l.mu.Unlock()
		for start := 0; start < len(taken); start += p.cfg.BatchSize {
			batch := taken[start:min(start+p.cfg.BatchSize, len(taken))]
			p.send(batch)
			l.sent(len(batch))
		}
		clear(taken) // drop references to requests
		if closed {
			l.signal() // drain what came meanwhile, then stop
		}
	}
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
		observeSend(context.Background(), p.ship.obs, Send{Peer: p.name, Reqs: batch}, func(context.Context) []error { return errs })
	} else {
		errs = p.ship.ship(p.ctx, p.name, p.sender, batch, nil)
		failed := 0
		for _, err := range errs {
			if err != nil && !IsPermanent(err) {
				failed++
			}
		}
		// A peer that failed a whole batch is left alone for a while, longer
		// each batch in a row, up to Backoff.Max: a blip costs a few
		// milliseconds of writes, a dead peer one batch per Max.
		p.mu.Lock()
		if failed == len(batch) {
			if p.downs == 0 {
				p.downSince = time.Now()
			}
			p.downs++
			p.downUntil = time.Now().Add(p.cfg.Backoff.Delay(p.downs))
		} else {
			p.downs, p.downSince = 0, time.Time{}
		}
		p.mu.Unlock()
	}
	p.done(p.name, batch, errs)
}
