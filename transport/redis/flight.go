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
)

// A reship worker keeps several batches in flight to the peer's Redis.
// Across a WAN a worker that waited for each batch's XADDs before its next
// read would carry one read per round trip, and a write read just after a
// batch left would wait a round trip before it left in turn: at 20 ms one
// way that made the lag's p50 about three one-way delays. So the worker
// reads on while batches are in flight, a batch at most every eighth of
// the shortest round trip lately (at most maxFlights at once), and each
// read's batch is handled (shipped, settled, retried when stalled) on its
// own, as a worker that handled a read at a time would handle it.
//
// # Per-key order: the fence
//
// Batches in flight go on different connections of the peer client's
// pool, and could reach the peer's Redis in either order. Rather than hold
// back a write while an earlier one of its key is in flight (which, with
// keys that recur within a round trip, made a write wait a round trip
// more), every batch of a worker carries its place in the worker's
// sequence, and the peer's Redis adds it, in a script, only after its
// predecessor: a fence key per worker beside the inbound stream holds the
// sequence number of the last batch added. A batch that arrives first is
// refused (a DCSYNCORDER error), waits until its predecessors are through, and
// is sent again: on a healthy link the batches arrive in the order they
// left, so this is rare. A batch whose predecessors are all through (or
// that has none in flight) goes without the check, and so does one of a
// new worker (a new token). A batch added before whose answer was lost is
// recognized by its sequence number and not added twice.
//
// Where the round trip is short (under nearRTT, a LAN), a worker keeps one
// batch in flight and reads again once it is through, as before: there
// more, smaller batches would cost the peer's hops more than the time
// they save.
const (
	maxFlights = 8
	nearRTT    = 5 * time.Millisecond
	// rttMemory is how long the shortest round trip is remembered, so that a
	// link that lengthens is followed.
	rttMemory = 10 * time.Second
	// fenceTTL is how long a fence key outlives its worker's last batch.
	fenceTTL = 24 * time.Hour
)

// flight is one batch of a reship worker in its worker's sequence.
type flight struct {
	fs   *flights
	seq  uint64
	prev *flight
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
	token string // this worker's, in its fence
	fence string // the fence key, in the peer's slot of the inbound stream
	sem   chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	seq      uint64
	last     *flight
	launched time.Time
	rtt      time.Duration // the shortest batch time lately: the link's
	rttAt    time.Time
}

func newFlights(fence string) *flights {
	return &flights{token: strconv.FormatUint(rand.Uint64(), 36), fence: fence, sem: make(chan struct{}, maxFlights)}
}

// launch handles msgs as a batch of its own, beside those in flight, once
// fewer than maxFlights are.
func (fs *flights) launch(ctx context.Context, w *worker, msgs []goredis.XMessage, counts map[string]int64) {
	select {
	case fs.sem <- struct{}{}:
	case <-ctx.Done():
		return // unhandled: the entries stay pending, reread or claimed later
	}
	fs.mu.Lock()
	fs.seq++
	f := &flight{fs: fs, seq: fs.seq, prev: fs.last, done: make(chan struct{}), arrived: make(chan struct{})}
	fs.last, fs.launched = f, time.Now()
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

// sent records how long a batch took to the peer's answer.
func (fs *flights) sent(took time.Duration) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	// The shortest time lately is the link's; longer ones are the
	// machine's or the peer's queues, which the pace should not follow.
	if now := time.Now(); fs.rtt == 0 || took < fs.rtt || now.Sub(fs.rttAt) > rttMemory {
		fs.rtt, fs.rttAt = took, now
	}
}

// pace waits until the worker may read its next batch: on a short link
// once the last batch is through, on a long one an eighth of the round
// trip after the last left (at once when none is in flight).
func (fs *flights) pace(ctx context.Context) {
	fs.mu.Lock()
	last, rtt, launched := fs.last, fs.rtt, fs.launched
	fs.mu.Unlock()
	if last.through() {
		return
	}
	var timer <-chan time.Time
	if rtt >= nearRTT {
		d := time.Until(launched.Add(rtt / maxFlights))
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-last.done:
	case <-timer:
	case <-ctx.Done():
	}
}

// drain waits until every batch is through.
func (fs *flights) drain() { fs.wg.Wait() }

// fenceScript adds a worker's batch to the inbound stream (KEYS[1]) in
// its worker's order: KEYS[2] is the worker's fence, "<token>:<seq>" of its
// last batch added, and KEYS[3] parks the batches that came before their
// predecessor, until it comes. ARGV: token, sequence number, "1" when every
// batch before it is through (added, or given up: then what is parked
// before it is added first, and it goes whatever the fence says), the TTL
// in ms, and then each entry's count and frames. It returns 1 once added
// (with the parked batches that followed it), 0 for a batch added before
// (its answer was lost), 2 for one parked.
var fenceScript = goredis.NewScript(`
local tok, seq = ARGV[1], tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[2])
local last
if cur then
  local t, s = string.match(cur, '^(.*):(%d+)$')
  if t == tok then last = tonumber(s) end
end
if last and last >= seq then return 0 end
local function unpark(s)
  local f = tok .. ':' .. s
  local n = tonumber(redis.call('HGET', KEYS[3], f))
  if not n then return false end
  for i = 1, n, 2 do
    local c, b = redis.call('HGET', KEYS[3], f .. ':' .. i), redis.call('HGET', KEYS[3], f .. ':' .. (i + 1))
    redis.call('XADD', KEYS[1], '*', 'n', c, 'b', b)
    redis.call('HDEL', KEYS[3], f .. ':' .. i, f .. ':' .. (i + 1))
  end
  redis.call('HDEL', KEYS[3], f)
  return true
end
if ARGV[3] ~= '1' and seq > 1 and last ~= seq - 1 then
  local f = tok .. ':' .. seq
  redis.call('HSET', KEYS[3], f, #ARGV - 4)
  for i = 5, #ARGV do redis.call('HSET', KEYS[3], f .. ':' .. (i - 4), ARGV[i]) end
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  return 2
end
if ARGV[3] == '1' then
  for s = math.max((last or 0) + 1, seq - ` + strconv.Itoa(2*maxFlights) + `), seq - 1 do unpark(s) end
  local f = tok .. ':' .. seq
  local n = tonumber(redis.call('HGET', KEYS[3], f))
  if n then
    for i = 1, n do redis.call('HDEL', KEYS[3], f .. ':' .. i) end
    redis.call('HDEL', KEYS[3], f)
  end
end
for i = 5, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'n', ARGV[i], 'b', ARGV[i + 1])
end
while unpark(seq + 1) do seq = seq + 1 end
redis.call('SET', KEYS[2], tok .. ':' .. seq, 'PX', ARGV[4])
return 1
`)

// fencedSender is the Sender of one reship batch: it adds the batch's
// requests, in the encodings they were read in, through the fence.
type fencedSender struct {
	rawSender
	f *flight
}

// Send implements dcsync.Sender. A batch parked ahead of its predecessor
// is in the peer's stream once the predecessor is (the predecessor's add
// adds it): Send waits for that, or, when the predecessor is through
// without it (given up), sends the batch again, past the fence.
func (s fencedSender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	prev := s.f.prev
	free := prev.through()
	parked, err := s.add(ctx, reqs, free)
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
	if len(reqs) == 0 {
		return false, nil
	}
	max := or(s.max, 256)
	args := []any{s.f.fs.token, s.f.seq, "0", fenceTTL.Milliseconds()}
	if free {
		args[2] = "1"
	}
	var blobs [][]byte
	for start := 0; start < len(reqs); start += max {
		chunk := reqs[start:min(start+max, len(reqs))]
		blobs = append(blobs, encodeBatch(s.raw, chunk))
		args = append(args, len(chunk), blobs[len(blobs)-1])
	}
	var res int64
	err := s.n.replicated(ctx, s.client, s.stream, func(c adder) error {
		var err error
		res, err = fenceScript.Run(ctx, c, []string{s.stream, s.f.fs.fence, s.f.fs.fence + ":parked"}, args...).Int64()
		return err
	})
	for _, b := range blobs {
		putBlob(b)
	}
	if err != nil {
		return false, fmt.Errorf("redis: add %d requests to %s: %w", len(reqs), s.stream, err)
	}
	return res == 2, nil
}
