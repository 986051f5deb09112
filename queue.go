package dcsync

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"sync"
	"time"
)

// queueReship is the built-in Reship: per peer, a bounded queue split in
// lanes, each with a worker that sends its writes in batches, several in
// flight over a Pipeliner (as many as the peer's window allows).
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
	win    window
	ctx    context.Context // of the sends; ended by queueReship.stop

	mu        sync.Mutex
	downs     int       // tries in a row that failed whole
	downSince time.Time // zero while the peer is up
	probeAt   time.Time // while down: when the next try may go
	probing   bool      // while down: a try is in flight
}

// lane is a FIFO of writes and the worker that sends them in batches. A
// writer takes its lock to append; the worker wakes when the lane becomes
// non-empty, when it holds a full batch and when a batch in flight ends,
// not for every write, and takes a batch at a time.
type lane struct {
	mu     sync.Mutex
	reqs   []*Request    // queued, oldest first, from head on
	head   int           // reqs[:head] are taken
	retry  []*flight     // batches that failed whole, to re-send first, by seq
	flying []*flight     // batches in flight, by seq
	seq    uint64        // of the last batch taken
	held   int           // queued, in flight or to retry
	limit  int           // of held
	space  chan struct{} // closed when held falls below limit; nil when nobody waits
	closed bool
	ready  chan struct{} // capacity 1: the worker has something to do
	pipe   Pipe          // nil: one batch in flight at a time
	wake   *time.Timer   // the worker's: signals the lane when a down peer may be tried
}

// flight is a batch taken from a lane.
type flight struct {
	seq   uint64
	reqs  []*Request
	bytes int
	start time.Time
}

func newQueueReship(peers map[string]Sender, cfg Delivery, sh *shipper,
	done func(string, []*Request, []error), closing chan struct{}) *queueReship {
	ctx, stop := context.WithCancel(context.Background())
	q := &queueReship{closing: closing, stop: stop}
	for name, s := range peers {
		p := &peerQueue{name: name, sender: s, seed: maphash.MakeSeed(), cfg: cfg, ship: sh, done: done, ctx: ctx}
		p.win.init(cfg.Window)
		q.peers = append(q.peers, p)
		pl, _ := s.(Pipeliner)
		for range cfg.Workers {
			l := &lane{limit: max(cfg.QueueSize/cfg.Workers, 1), ready: make(chan struct{}, 1)}
			if pl != nil {
				l.pipe = pl.Pipe()
			}
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

// Reship queues req for every peer. It queues it first for every peer with
// room, so that a slow peer delays no other; then it waits for room in the
// full queues, taking whichever frees first, until the context ends
// (ErrQueueFull) or the Syncer closes. A peer that is down and whose queue
// is full does not hold up the writer: the write is recorded as failed for
// it (ErrPeerDown), for the reconciler.
func (q *queueReship) Reship(ctx context.Context, req *Request) error {
	var full []*peerQueue
	for _, p := range q.peers {
		ok, _, err := p.lane(req.Key).push(req, p, false)
		if err != nil {
			return err
		}
		if !ok {
			full = append(full, p)
		}
	}
	for len(full) > 0 {
		rest, spaces := full[:0], make([]<-chan struct{}, 0, len(full))
		for _, p := range full {
			ok, space, err := p.lane(req.Key).push(req, p, true)
			if err != nil {
				return err
			}
			if !ok {
				rest, spaces = append(rest, p), append(spaces, space)
			}
		}
		if full = rest; len(full) == 0 {
			break
		}
		if err := waitAny(ctx, q.closing, spaces); err != nil {
			if err == ErrClosed {
				return err
			}
			return fmt.Errorf("%w for peer %s: %w", ErrQueueFull, full[0].name, err)
		}
	}
	return nil
}

// waitAny waits until one of spaces is closed, and returns nil, or until
// ctx ends or closing is closed, and returns ctx's error or ErrClosed.
func waitAny(ctx context.Context, closing <-chan struct{}, spaces []<-chan struct{}) error {
	if len(spaces) == 1 {
		select {
		case <-spaces[0]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-closing:
			return ErrClosed
		}
	}
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(closing)}}
	for _, c := range spaces {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	switch i, _, _ := reflect.Select(cases); i {
	case 0:
		return ctx.Err()
	case 1:
		return ErrClosed
	}
	return nil
}

// push appends req when the lane has room, and reports whether it did;
// when not, and wait is set, it also returns a channel closed once there
// may be room. A write for a peer that is down and full is given up at
// once, and counts as pushed.
func (l *lane) push(req *Request, p *peerQueue, wait bool) (bool, <-chan struct{}, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false, nil, ErrClosed
	}
	if l.held < l.limit {
		l.reqs = append(l.reqs, req)
		l.held++
		n := len(l.reqs) - l.head
		l.mu.Unlock()
		if n == 1 || n == p.cfg.BatchSize {
			l.signal()
		}
		return true, nil, nil
	}
	if down, _ := p.down(); down {
		l.mu.Unlock()
		p.giveUp([]*Request{req})
		return true, nil, nil
	}
	var space chan struct{}
	if wait {
		if l.space == nil {
			l.space = make(chan struct{})
		}
		space = l.space
	}
	l.mu.Unlock()
	return false, space, nil
}

func (l *lane) signal() {
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

// sent releases n writes that were sent or given up, making room for
// writers.
func (l *lane) sent(n int) {
	l.mu.Lock()
	l.held -= n
	l.wakeWriters()
	l.mu.Unlock()
}

// wakeWriters wakes the writers waiting for room; l.mu is held.
func (l *lane) wakeWriters() {
	if l.space != nil {
		close(l.space)
		l.space = nil
	}
}

// idle reports whether every queued write has been sent or given up, or
// waits for a peer that is down.
func (q *queueReship) idle() bool {
	for _, p := range q.peers {
		if down, _ := p.down(); down {
			continue
		}
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

// close sends what is queued (what is queued for a peer that is down is
// given up) and stops the workers, or, when ctx ends first, ends the sends
// under way, so that the workers record what is left as failed at once,
// and returns how many deliveries were left. Callers must not call Reship
// after close.
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

// work sends l's batches until l closes and is empty.
func (p *peerQueue) work(l *lane) {
	var linger *time.Timer
	for {
		<-l.ready
		for {
			sent, stop := p.next(l, &linger)
			if stop {
				if l.wake != nil {
					l.wake.Stop()
				}
				return
			}
			if !sent {
				break
			}
		}
	}
}

// next sends one batch of l when it may, and reports whether it did, or
// whether the lane is closed and done with.
func (p *peerQueue) next(l *lane, linger **time.Timer) (sent, stop bool) {
	l.mu.Lock()
	retry := len(l.retry)
	queued, closed, flying := len(l.reqs)-l.head+retry, l.closed, len(l.flying)
	l.mu.Unlock()
	if queued == 0 {
		return false, closed && flying == 0
	}
	if flying > 0 && (l.pipe == nil || !p.win.room()) {
		return false, false // a batch's end signals the lane
	}
	probe := false
	if down, due := p.down(); down {
		if closed { // nobody waits for the peer any more
			reqs := l.drain()
			p.giveUp(reqs)
			l.sent(len(reqs))
			return false, flying == 0
		}
		if flying > 0 { // its end signals the lane
			return false, false
		}
		if !due {
			p.wakeAtProbe(l)
			return false, false
		}
		if !p.startProbe() { // another lane's; its end signals the lane
			return false, false
		}
		probe = true
	}
	if !probe && queued < p.cfg.BatchSize && p.cfg.Linger > 0 && !closed && retry == 0 {
		if *linger == nil {
			*linger = time.NewTimer(p.cfg.Linger)
		} else {
			(*linger).Reset(p.cfg.Linger)
		}
		select {
		case <-(*linger).C:
		case <-l.ready: // a full batch, closing, or a batch's end
			(*linger).Stop()
		}
	}
	f := l.take(p.cfg.BatchSize)
	if f == nil { // drained meanwhile
		if probe {
			p.endProbe()
		}
		return false, false
	}
	p.win.add(f.bytes)
	var first func() error
	cancel := context.CancelFunc(func() {})
	if l.pipe != nil {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(p.ctx, p.cfg.Timeout)
		first = l.pipe.Begin(ctx, f.reqs)
	}
	go p.finish(l, f, first, cancel, probe)
	return true, false
}

// take takes the next batch: the oldest to retry, else up to n queued
// writes.
func (l *lane) take(n int) *flight {
	l.mu.Lock()
	defer l.mu.Unlock()
	var f *flight
	if len(l.retry) > 0 {
		f = l.retry[0]
		l.retry = slices.Delete(l.retry, 0, 1)
	} else {
		n = min(n, len(l.reqs)-l.head)
		if n == 0 {
			return nil
		}
		l.seq++
		f = &flight{seq: l.seq, reqs: slices.Clone(l.reqs[l.head : l.head+n])}
		for _, r := range f.reqs {
			f.bytes += r.size()
		}
		clear(l.reqs[l.head : l.head+n])
		l.head += n
		if l.head == len(l.reqs) {
			l.reqs, l.head = l.reqs[:0], 0
		} else if l.head > 4096 && l.head > len(l.reqs)/2 {
			l.reqs = l.reqs[:copy(l.reqs, l.reqs[l.head:])]
			l.head = 0
		}
	}
	f.start = time.Now()
	l.flying = append(l.flying, f)
	return f
}

// drain takes every write queued or to retry.
func (l *lane) drain() []*Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Request
	for _, f := range l.retry {
		out = append(out, f.reqs...)
	}
	out = append(out, l.reqs[l.head:]...)
	l.retry, l.reqs, l.head = nil, nil, 0
	return out
}

// finish waits for f's delivery (first waits for its first try when it was
// begun on a Pipe) and settles it: delivered, failed for good, or, when it
// failed whole for a reason that may pass, back in the lane to be re-sent
// once the peer answers again.
func (p *peerQueue) finish(l *lane, f *flight, first func() error, cancel context.CancelFunc, probe bool) {
	attempts := p.cfg.Backoff.Attempts
	if probe {
		attempts = 1
	}
	var rtt time.Duration
	if first != nil {
		begun := first
		first = func() error {
			err := begun()
			rtt = time.Since(f.start)
			return err
		}
	}
	errs, whole := p.ship.shipFrom(p.ctx, p.name, p.sender, f.reqs, nil, first, attempts)
	cancel()
	p.win.end(f.bytes, rtt, !whole)
	p.health(!whole, probe)
	// The batch leaves flying last: the worker, and so close, stops only
	// once every batch is settled.
	l.mu.Lock()
	requeue := whole && !l.closed && p.cfg.Probe >= 0
	if requeue {
		l.flying = slices.DeleteFunc(l.flying, func(g *flight) bool { return g == f })
		i, _ := slices.BinarySearchFunc(l.retry, f.seq, func(g *flight, seq uint64) int { return cmp.Compare(g.seq, seq) })
		l.retry = slices.Insert(l.retry, i, f)
	}
	l.mu.Unlock()
	if !requeue {
		p.done(p.name, f.reqs, errs)
		l.mu.Lock()
		l.flying = slices.DeleteFunc(l.flying, func(g *flight) bool { return g == f })
		l.held -= len(f.reqs)
		l.wakeWriters()
		l.mu.Unlock()
	}
	for _, o := range p.lanes { // room in the window, or the peer's state changed
		o.signal()
	}
}

// down reports whether the peer is marked down, and if so whether the time
// to try it again has come.
func (p *peerQueue) down() (down, due bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.downSince.IsZero() {
		return false, false
	}
	return true, !time.Now().Before(p.probeAt)
}

// startProbe claims the one try of a peer that is down.
func (p *peerQueue) startProbe() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.probing {
		return false
	}
	p.probing = true
	return true
}

func (p *peerQueue) endProbe() {
	p.mu.Lock()
	p.probing = false
	p.mu.Unlock()
}

// wakeAtProbe signals l when the peer may be tried again.
func (p *peerQueue) wakeAtProbe(l *lane) {
	p.mu.Lock()
	d := time.Until(p.probeAt)
	p.mu.Unlock()
	d = max(d, time.Millisecond)
	if l.wake == nil {
		l.wake = time.AfterFunc(d, l.signal)
	} else {
		l.wake.Reset(d)
	}
}

// health records the outcome of a batch: a batch that failed whole marks
// the peer down, to be tried again after a backoff (at most Probe); any
// other marks it up. A peer that goes down wakes the writers waiting for
// room in its queue, which then give up.
func (p *peerQueue) health(ok, probe bool) {
	p.mu.Lock()
	if probe {
		p.probing = false
	}
	wasDown := !p.downSince.IsZero()
	if ok {
		p.downs, p.downSince = 0, time.Time{}
	} else {
		now := time.Now()
		p.downs++
		if !wasDown {
			p.downSince = now
		}
		limit := p.cfg.Probe
		if limit < 0 {
			limit = p.cfg.Backoff.Max
		}
		p.probeAt = now.Add(min(p.cfg.Backoff.Delay(p.downs), limit))
	}
	p.mu.Unlock()
	if !ok && !wasDown {
		for _, l := range p.lanes {
			l.mu.Lock()
			l.wakeWriters()
			l.mu.Unlock()
		}
	}
}

// giveUp records reqs as failed for the peer, which is down, and reports
// them done: the reconciler delivers them once it is back. Releasing them
// from their lane is the caller's.
func (p *peerQueue) giveUp(reqs []*Request) {
	if len(reqs) == 0 {
		return
	}
	errs := make([]error, len(reqs))
	now := time.Now()
	recs := getRecords()
	for i, req := range reqs {
		errs[i] = ErrPeerDown
		*recs = append(*recs, Record{ID: req.ID, DC: p.ship.dc, Origin: req.Origin, Stage: StageReship,
			Status: StatusFailed, Target: p.name, Attempt: 1, Error: ErrPeerDown.Error(),
			Written: req.Time(), Time: now})
	}
	p.ship.record(*recs...)
	putRecords(recs)
	observeSend(context.Background(), p.ship.obs, Send{Peer: p.name, Reqs: reqs}, func(context.Context) []error { return errs })
	p.done(p.name, reqs, errs)
}

// size is about the bytes req takes on the wire.
func (r *Request) size() int {
	n := len(r.ID) + len(r.Origin) + len(r.Key) + len(r.Op) + len(r.Payload) + 24
	for k, v := range r.Header {
		n += len(k) + len(v) + 4
	}
	return n
}

// window bounds the bytes in flight to one peer. It follows the link as
// TCP Vegas does: it grows by the bytes acknowledged while writes wait for
// room and the round trips stay under twice the shortest seen (the peer
// does not queue), and shrinks by a quarter, once a round trip at most,
// when they pass four times the shortest (the peer queues: more in flight
// only lengthens the lag).
type window struct {
	mu       sync.Mutex
	cwnd     int // bytes allowed in flight
	inflight int
	max      int
	limited  bool          // a lane waited for room since the last growth
	minRTT   time.Duration // shortest round trip of this period
	prevMin  time.Duration // of the previous period
	period   time.Time     // end of this period
	cut      time.Time     // no shrinking before
}

// minWindow is where the window starts, and its floor: 1 MiB fills a
// round trip of 40 ms at 25 MB/s before the window has grown at all.
const minWindow = 1 << 20

// rttPeriod is how long the shortest round trip is remembered: a route
// that lengthens is followed after at most two periods.
const rttPeriod = 10 * time.Second

func (w *window) init(max int) {
	w.max = max
	w.cwnd = min(minWindow, max)
}

// room reports whether another batch may go, noting that a lane waited
// when not.
func (w *window) room() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight < w.cwnd {
		return true
	}
	w.limited = true
	return false
}

func (w *window) add(n int) {
	w.mu.Lock()
	w.inflight += n
	w.mu.Unlock()
}

// end accounts for a batch of n bytes that ended after rtt (0 when not
// measured), delivered or not.
func (w *window) end(n int, rtt time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight -= n
	if !ok {
		w.cwnd, w.limited = min(minWindow, w.max), false
		return
	}
	if rtt <= 0 {
		return
	}
	now := time.Now()
	if now.After(w.period) {
		w.prevMin, w.minRTT, w.period = w.minRTT, rtt, now.Add(rttPeriod)
	}
	w.minRTT = min(w.minRTT, rtt)
	base := w.minRTT
	if w.prevMin > 0 {
		base = min(base, w.prevMin)
	}
	switch {
	case rtt < 2*base && w.limited:
		w.cwnd = min(w.cwnd+n, w.max)
		w.limited = false
	case rtt > 4*base && now.After(w.cut):
		w.cwnd = max(w.cwnd-w.cwnd/4, min(minWindow, w.max))
		w.cut = now.Add(rtt)
	}
}

// peerState is what the queue knows of the delivery to one peer, for
// Stats.
type peerState struct {
	Backlog   int       // writes queued, in flight or waiting to be re-sent
	Oldest    time.Time // when the oldest of them was written; zero when none
	DownSince time.Time // since when the peer is marked down; zero while up
	Window    int       // bytes the window lets be in flight
	InFlight  int       // bytes in flight
}

// peerStates returns the state of the delivery to each peer.
func (q *queueReship) peerStates() map[string]peerState {
	out := make(map[string]peerState, len(q.peers))
	for _, p := range q.peers {
		var st peerState
		for _, l := range p.lanes {
			l.mu.Lock()
			st.Backlog += l.held
			firsts := make([]*Request, 0, 3)
			if len(l.retry) > 0 {
				firsts = append(firsts, l.retry[0].reqs[0])
			}
			if len(l.flying) > 0 {
				firsts = append(firsts, l.flying[0].reqs[0])
			}
			if l.head < len(l.reqs) {
				firsts = append(firsts, l.reqs[l.head])
			}
			for _, r := range firsts {
				if t := r.Time(); st.Oldest.IsZero() || t.Before(st.Oldest) {
					st.Oldest = t
				}
			}
			l.mu.Unlock()
		}
		p.mu.Lock()
		st.DownSince = p.downSince
		p.mu.Unlock()
		p.win.mu.Lock()
		st.Window, st.InFlight = p.win.cwnd, p.win.inflight
		p.win.mu.Unlock()
		out[p.name] = st
	}
	return out
}
