package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wait"
)

// A reship worker keeps several batches in flight to the peer's Redis.
// Across a WAN a worker that waited for each batch's adds before its next
// read would carry one read per round trip, and a write read just after a
// batch left would wait a round trip before it left in turn: at 20 ms one
// way that made the lag's p50 about three one-way delays. So the worker
// reads on while batches are in flight, a batch about every eighth of the
// shortest round trip lately (at most maxFlights at once; the workers of a
// link take turns, see link), and each
// read's batch is handled (shipped, settled, retried when stalled) on its
// own goroutine, as a worker that handled a read at a time would handle it.
//
// Where the round trip is short (under nearRTT, a LAN or loopback), a
// worker keeps one batch in flight and reads again once it is through, as
// a worker always did: there more, smaller batches would cost the peer's
// hops more than the time they save. Such a batch, launched with every
// batch before it through, is added with plain XADDs (plain), as before
// the batches in flight.
//
// # Per-key order: the fence
//
// Batches in flight go on different connections of the peer client's
// pool, and could reach the peer's Redis in either order. Rather than hold
// back a write while an earlier one of its key is in flight (which, with
// keys that recur within a round trip, made a write wait a round trip
// more), every batch of a worker carries its place in the worker's
// sequence, and the peer's Redis adds it in a script (fenceScript) only
// right after its predecessor: a fence key per worker (and per token, a
// worker's run) beside the inbound stream holds the sequence number of the
// last batch added. A batch that arrives before its predecessor is parked
// in a hash beside the fence, and the predecessor's script adds it right
// after itself (and the parked batches after it, in order); its Send
// returns once its predecessor's did. On a healthy link the batches arrive
// in the order they left, so parking is rare.
//
// The paths that end a batch other than being added:
//   - A batch given up (its handling ended without it being added: a
//     shutdown, a permanent error) is not acknowledged in the outbound
//     stream, so it is read again later (reread or claimed) as a batch of
//     its own. A batch parked behind it sees it through (done without
//     arrived) and sends itself again "free": past the fence, adding first
//     whatever of its predecessors is still parked (those were given up
//     too: a duplicate, which the peer's dedupe drops, in their order).
//   - A batch whose Send ends while it is parked (a timeout, a shutdown)
//     fails and is sent again or read again; if its predecessor comes
//     meanwhile, it is added from the park first, and the second send is
//     recognized by its sequence number and not added twice.
//   - A batch added whose answer was lost is recognized the same way.
//   - A worker that restarts draws a new token, and with it a new fence
//     and park: what an earlier run left parked was never acknowledged, so
//     it is read again; its keys expire after fenceTTL.
//   - A fenced batch whose predecessor was plain (the link lengthened
//     between them) waits until the predecessor is through, then goes free.
//
// The fence, the park and the inbound stream share the stream's hash tag,
// so the script runs on one node of a Redis Cluster.
const (
	maxFlights = 8
	nearRTT    = 5 * time.Millisecond
	// rttMemory is how long the shortest round trip is remembered, so that a
	// link that lengthens is followed.
	rttMemory = 10 * time.Second
	// fenceTTL is how long a fence and its park outlive their worker's
	// last batch: far longer than a batch is in flight, as a fence that
	// expired under batches in flight would park its next batch for good.
	fenceTTL = 24 * time.Hour
)

// flight is one batch of a reship worker in its worker's sequence.
type flight struct {
	fs   *flights
	seq  uint64
	prev *flight
	// plain says the batch is added with plain XADDs, bypassing the
	// fence: it was launched on a short link with every batch before it
	// through.
	plain bool
	// done is closed once this batch's handling ended and its
	// predecessor's done was closed: then no batch before it is sent
	// again, so a later one may go without the fence's check.
	done chan struct{}
	// arrived is closed once the batch is in the peer's stream: a batch
	// parked behind it then is too.
	arrived chan struct{}
	once    sync.Once
}

func (f *flight) arrive() { f.once.Do(func() { close(f.arrived) }) }

// through reports whether f, and so every batch before it, is through.
func (f *flight) through() bool {
	if f == nil {
		return true
	}
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// flights is the chain of a reship worker's batches in flight.
type flights struct {
	fence string // the fence key of this run, in the inbound stream's slot
	park  string // the hash of the batches parked ahead of their predecessor
	sem   chan struct{}
	// held says the worker holds a place in sem for its next batch: its
	// pace takes one before it takes a slot on the link, so that a worker
	// with maxFlights in flight leaves the link's slots to the others.
	// Only the worker's goroutine uses it.
	held bool
	wg   sync.WaitGroup

	link *link // the round trip to the peer, shared by its workers

	mu   sync.Mutex
	seq  uint64
	last *flight
}

// newFlights returns the flights of a worker whose fences begin with
// prefix, across l (a link of their own when nil); the token drawn here
// keeps them apart from an earlier run's.
func newFlights(prefix string, l *link) *flights {
	fence := prefix + ":" + strconv.FormatUint(rand.Uint64(), 36)
	if l == nil {
		l = new(link)
	}
	l.join(1)
	return &flights{fence: fence, park: fence + ":parked", sem: make(chan struct{}, maxFlights), link: l}
}

// link is what a peer's reship workers know of the round trip to its
// Redis: the shortest lately of their batches' times and of the PINGs
// the Node times (see Node.warm). The shortest time is the link's; longer
// ones are the machine's or the peer's queues, which the pace should not
// follow: after a burst at full speed, every batch of which queued behind
// others, the batches alone would leave the pace at several round trips
// until the first batch after it returned.
//
// The link also spaces the reads of its workers: on a long link each
// takes the next free slot (reserve), so that the workers' batches leave
// evenly, a slot every round trip / (maxFlights × workers), rather than
// all in the same instant every eighth of a round trip (a worker blocked
// in its read takes the first entry after another's read). A write then
// waits for the next batch at most a slot, not an eighth of a round trip.
type link struct {
	mu      sync.Mutex
	rtt     time.Duration
	at      time.Time
	workers int       // the workers sharing the link's slots
	next    time.Time // the next free slot
}

// join counts a worker among those sharing the link's slots (by n = 1)
// or, once it ends, no more (n = -1).
func (l *link) join(n int) {
	l.mu.Lock()
	l.workers += n
	l.mu.Unlock()
}

// reserve takes the next free slot on a link of round trip rtt and
// returns it: now when the link has been idle.
func (l *link) reserve(rtt time.Duration) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := time.Now()
	if l.next.After(at) {
		at = l.next
	}
	l.next = at.Add(rtt / time.Duration(maxFlights*max(l.workers, 1)))
	return at
}

// observe records a round trip that took took.
func (l *link) observe(took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); l.rtt == 0 || took < l.rtt || now.Sub(l.at) > rttMemory {
		l.rtt, l.at = took, now
	}
}

// get returns the shortest round trip lately, 0 before any.
func (l *link) get() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rtt
}

// launch handles msgs as a batch of its own, beside those in flight, once
// fewer than maxFlights are.
func (fs *flights) launch(ctx context.Context, w *worker, msgs []goredis.XMessage, counts map[string]int64) {
	if !fs.acquire(ctx) {
		return // unhandled: the entries stay pending, reread or claimed later
	}
	fs.held = false // the batch's now, until it is through

	rtt := fs.link.get()
	fs.mu.Lock()
	fs.seq++
	f := &flight{fs: fs, seq: fs.seq, prev: fs.last, done: make(chan struct{}), arrived: make(chan struct{}),
		plain: rtt < nearRTT && fs.last.through()}
	if !f.plain && !f.prev.through() {
		w.n.overlapped.Add(1)
	}
	fs.last = f
	fs.mu.Unlock()
	fs.wg.Go(func() {
		defer func() {
			<-fs.sem
			if f.prev != nil {
				<-f.prev.done
			}
			f.prev = nil // the chain behind a batch through is garbage
			close(f.done)
		}()
		w.process(ctx, msgs, counts, f)
	})
}

// pace waits until the worker may read its next batch: on a short link
// once the last batch is through, on a long one at its next slot on the
// link (see link.reserve), an eighth of the round trip after the last
// left at most when its workers share the slots evenly.
func (fs *flights) pace(ctx context.Context) {
	if !fs.acquire(ctx) {
		return
	}
	rtt := fs.link.get()
	if rtt < nearRTT {
		fs.mu.Lock()
		last := fs.last
		fs.mu.Unlock()
		if last != nil {
			select {
			case <-last.done:
			case <-ctx.Done():
			}
		}
		return
	}
	if d := time.Until(fs.link.reserve(rtt)); d > 0 {
		wait.Sleep(ctx, d)
	}
}

// acquire takes a place among the worker's batches in flight for its
// next batch, unless it holds one already, waiting while maxFlights are
// in flight; it reports whether it holds one (false once ctx ends).
func (fs *flights) acquire(ctx context.Context) bool {
	if fs.held {
		return true
	}
	select {
	case fs.sem <- struct{}{}:
		fs.held = true
	case <-ctx.Done():
	}
	return fs.held
}

// drain waits until every batch is through.
func (fs *flights) drain() { fs.wg.Wait() }

// close drains the flights of a worker that ends, and leaves the link's
// slots to the others.
func (fs *flights) close() {
	fs.drain()
	fs.link.join(-1)
}

// fenceScript adds a worker's batch to the inbound stream (KEYS[1]) in
// its worker's order: KEYS[2] is the worker's fence, the sequence number
// of its last batch added, and KEYS[3] parks the batches that came before
// their predecessor, until it comes. ARGV: the batch's sequence number,
// "1" when it goes free (every batch before it is through: then what is
// still parked before it is added first, and it goes whatever the fence
// says), the TTL in ms, and then each entry's count and frames. It returns
// 1 once added (with the parked batches that follow it), 0 for a batch
// added before (its answer was lost), 2 for one parked.
var fenceScript = goredis.NewScript(`
local seq = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last >= seq then return 0 end
local function unpark(s)
  local n = tonumber(redis.call('HGET', KEYS[3], s))
  if not n then return false end
  for i = 1, n, 2 do
    local c, b = redis.call('HGET', KEYS[3], s .. ':' .. i), redis.call('HGET', KEYS[3], s .. ':' .. (i + 1))
    redis.call('XADD', KEYS[1], '*', 'n', c, 'b', b)
    redis.call('HDEL', KEYS[3], s .. ':' .. i, s .. ':' .. (i + 1))
  end
  redis.call('HDEL', KEYS[3], s)
  return true
end
if ARGV[2] ~= '1' and last ~= seq - 1 then
  redis.call('HSET', KEYS[3], seq, #ARGV - 3)
  for i = 4, #ARGV do redis.call('HSET', KEYS[3], seq .. ':' .. (i - 3), ARGV[i]) end
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  return 2
end
if ARGV[2] == '1' then
  for s = math.max(last + 1, seq - ` + strconv.Itoa(2*maxFlights) + `), seq - 1 do unpark(s) end
  local n = tonumber(redis.call('HGET', KEYS[3], seq))
  if n then
    for i = 1, n do redis.call('HDEL', KEYS[3], seq .. ':' .. i) end
    redis.call('HDEL', KEYS[3], seq)
  end
end
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'n', ARGV[i], 'b', ARGV[i + 1])
end
while unpark(seq + 1) do seq = seq + 1 end
redis.call('SET', KEYS[2], seq, 'PX', ARGV[3])
return 1
`)

// fencedSender is the Sender of one reship batch in flight: it adds the
// batch's requests, in the encodings they were read in, through the fence
// (or, for a plain batch, with XADDs).
type fencedSender struct {
	rawSender
	f *flight
}

// Send implements dcsync.Sender. A batch parked ahead of its predecessor
// is in the peer's stream once the predecessor is (the predecessor's add
// adds it): Send waits for that, or, when the predecessor is through
// without it (given up), sends the batch again, free.
func (s fencedSender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	if len(reqs) == 0 {
		return nil // not arrived: a batch parked behind it goes free
	}
	if s.f.plain {
		err := s.rawSender.Send(ctx, reqs)
		if err == nil {
			s.f.arrive()
		}
		return err
	}
	prev := s.f.prev
	if prev != nil && prev.plain {
		// The fence does not know of a plain batch: wait for it to be
		// through, and go free.
		select {
		case <-prev.done:
		case <-ctx.Done():
			return fmt.Errorf("redis: add to %s behind the batch before: %w", s.stream, ctx.Err())
		}
	}
	parked, err := s.add(ctx, reqs, prev.through())
	if err != nil || !parked {
		if err == nil {
			s.f.arrive()
		}
		return err
	}
	select {
	case <-prev.arrived:
		s.f.arrive()
		return nil
	case <-prev.done:
	case <-ctx.Done():
		return fmt.Errorf("redis: add to %s behind the batch before: %w", s.stream, ctx.Err())
	}
	if _, err = s.add(ctx, reqs, true); err == nil {
		s.f.arrive()
	}
	return err
}

// add runs the fence script once; free skips its order check. It reports
// whether the batch was parked.
func (s fencedSender) add(ctx context.Context, reqs []*dcsync.Request, free bool) (bool, error) {
	max := or(s.max, 256)
	args := []any{s.f.seq, "0", fenceTTL.Milliseconds()}
	if free {
		args[1] = "1"
	}
	blobs := encodeEntries(s.raw, reqs, max, func(count int, frames []byte) { args = append(args, count, frames) })
	var res int64
	err := s.n.replicated(ctx, s.client, s.stream, func(c adder) error {
		var err error
		res, err = fenceScript.Run(ctx, c, []string{s.stream, s.f.fs.fence, s.f.fs.park}, args...).Int64()
		return err
	})
	putBlobs(blobs)
	if err != nil {
		return false, fmt.Errorf("redis: add %d requests to %s: %w", len(reqs), s.stream, err)
	}
	return res == 2, nil
}
