package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wait"
)

// group is one consumer group on one stream of this datacenter's Redis, and
// what its workers do with the requests they read.
type group struct {
	n      *Node
	stream string
	name   string
	hop    string // names the hop in consumer names, logs and dead letters
	// handle hands reqs on to the next hop and returns each one's error;
	// raw holds the encodings they were read in, and later, when set (see
	// defers), the batch's claims and hand-offs deferred to its
	// acknowledgement.
	// f, for the reship group, is the batch's place among the worker's
	// batches in flight (see flights).
	handle func(ctx context.Context, reqs []*dcsync.Request, raw map[*dcsync.Request]string, later *deferred, f *flight) []error
	// probe, when set, checks that the next hop is back before a stalled
	// batch is retried, so an outage costs pings rather than failed sends.
	probe func(ctx context.Context) error
	// onDead, when set, is told the request IDs dead-lettered.
	onDead func(ctx context.Context, ids []string) error
	// defers says that handle runs the collect hop over the Node's Dedupe
	// and apply stream, whose writes are then deferred to the
	// acknowledgement.
	defers bool
	// whole says that handle takes every request read at once, rather
	// than BatchSize at a time: a Sender adds them as entries of
	// BatchSize, all in one round trip. Its workers keep several such
	// batches in flight (see flights), through the fence of fence(consumer).
	whole bool
	fence func(consumer string) string
	// link, for the reship group, is the round trip to the peer.
	link *link
}

// failures is the hash, beside each stream, that keeps the last error of
// entries left pending for a retry, so that whichever worker finally
// dead-letters one can say why.
func (g *group) failures() string { return g.stream + ":failures:" + g.name }

// entry is one stream entry in the hands of a worker, and item one request
// it carries.
type entry struct {
	msg        goredis.XMessage
	deliveries int64 // for claimed entries: deliveries so far, this one included
	err        error // the entry's own: it could not be decoded
	items      []item
	settled    bool // acknowledged, or left for a retry with its failures recorded
}

type item struct {
	e     *entry
	index int             // in the entry
	req   *dcsync.Request // nil when it could not be decoded
	raw   string          // its encoding
	err   error
	out   outcome
}

// work reads and handles batches as consumer until ctx ends. It never
// returns early: Redis errors are logged and retried with backoff.
func (g *group) work(ctx context.Context, consumer string) {
	w := &worker{group: g, consumer: consumer, cursor: "0-0", own: true, ownEnd: "0"}
	if g.whole {
		w.flights = newFlights(g.fence(consumer), g.link)
	}
	defer func() {
		if w.flights != nil {
			w.flights.close() // each batch ends within shutdownGrace
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		w.sendAcks(actx)
	}()
	for ctx.Err() == nil {
		var err error
		if w.flights != nil {
			w.flights.pace(ctx)
		}
		switch {
		case w.isOwn():
			if w.flights != nil {
				// The batches in flight are among this consumer's pending
				// entries: the reread would send them again.
				w.flights.drain()
			}
			err = w.reread(ctx)
		case !time.Now().Before(w.nextClaim):
			err = w.claim(ctx)
		default:
			err = w.read(ctx)
		}
		if err == nil {
			w.failing = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if isNoGroup(err) {
			err = g.create(ctx)
		} else if unavailable(err) {
			w.setOwn() // a read may have been delivered and its reply lost
		}
		if err != nil {
			w.failing++
			if w.failing == 1 {
				g.n.cfg.Logger.Warn("redis: stream worker failing, retrying", "hop", g.hop,
					"stream", g.stream, "consumer", consumer, "err", err)
			}
			wait.Sleep(ctx, g.n.cfg.Backoff.Delay(min(w.failing, 30)))
		}
	}
}

// worker is the state of one consumer.
type worker struct {
	*group
	consumer  string
	nextClaim time.Time // zero: claim at once, taking over a predecessor's entries
	cursor    string    // where the XAUTOCLAIM scan goes on
	failing   int       // consecutive failed rounds
	// own says entries may be pending to this consumer that it is not
	// handling: a reply or an acknowledgement was lost with the
	// connection. The worker rereads them (XREADGROUP from ID 0) first,
	// as soon as Redis answers again, rather than leaving them for
	// ClaimIdle. It starts true, for a predecessor of the same name.
	own    bool
	ownEnd string // where the reread goes on

	// acks are entries settled with nothing else to record: their XACK
	// goes with the next read, sparing a round trip a batch.
	acks []string
	// mu guards own and acks, which the batches in flight set too.
	mu sync.Mutex
	// flights, for the reship group, are the batches in flight to the
	// peer; nil for the other groups, whose workers handle a read at a time.
	flights *flights
}

func (w *worker) isOwn() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.own
}

// setOwn notes that entries may be pending to this consumer unhandled.
func (w *worker) setOwn() {
	w.mu.Lock()
	w.own = true
	w.mu.Unlock()
}

// takeAcks returns the acknowledgements waiting for the next read, which
// are the caller's until it gives back those whose XACK failed (acked).
func (w *worker) takeAcks() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	acks := w.acks
	w.acks = nil
	return acks
}

// readCount is how many entries a worker reads at once: entries carry up to
// BatchSize requests each.
func (n *Node) readCount() int64 { return int64(max(1, n.cfg.BatchSize/8)) }

// reads is how many new entries a worker of g reads at once. A reship
// worker sends all it read in one pipelined round trip to the peer's Redis:
// it reads up to BatchSize entries, so that across a WAN a round trip
// carries what many batches of the outbound stream hold.
func (g *group) reads() int64 {
	if g.whole {
		return int64(max(1, g.n.cfg.BatchSize))
	}
	return g.n.readCount()
}

// read handles the next batch of new entries, if any arrive within Block.
// The acknowledgements of the last batch go first, in the same round trip.
func (w *worker) read(ctx context.Context) error {
	args := &goredis.XReadGroupArgs{Group: w.name, Consumer: w.consumer,
		Streams: []string{w.stream, ">"}, Count: w.reads(), Block: w.n.cfg.Block}
	var res []goredis.XStream
	var err error
	if acks := w.takeAcks(); len(acks) > 0 {
		if !w.n.blockInPipeline {
			args.Block = -1 // a pipeline waits only ReadTimeout for its replies
		}
		var rd *goredis.XStreamSliceCmd
		var ack *goredis.IntCmd
		_, _ = w.n.cfg.Client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			ack = p.XAck(ctx, w.stream, w.name, acks...)
			rd = p.XReadGroup(ctx, args)
			return nil
		})
		w.acked(acks, ack.Err())
		res, err = rd.Result()
		if errors.Is(err, goredis.Nil) && args.Block < 0 {
			args.Block = w.n.cfg.Block
			res, err = w.n.cfg.Client.XReadGroup(ctx, args).Result()
		}
	} else {
		res, err = w.n.cfg.Client.XReadGroup(ctx, args).Result()
	}
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("redis: read %s: %w", w.stream, err)
	}
	for _, s := range res {
		if len(s.Messages) > 0 {
			w.handleRead(ctx, s.Messages, nil)
		}
	}
	return nil
}

// reread handles the next entries pending to this consumer itself, which
// it read before but did not settle, as claimed entries: with their
// delivery counts and failure records. Once none is left, w.own ends.
func (w *worker) reread(ctx context.Context) error {
	w.sendAcks(ctx)
	res, err := w.n.cfg.Client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: w.name, Consumer: w.consumer,
		Streams: []string{w.stream, w.ownEnd}, Count: w.n.readCount()}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("redis: reread %s: %w", w.stream, err)
	}
	var msgs []goredis.XMessage
	if len(res) > 0 {
		msgs = res[0].Messages
	}
	if len(msgs) == 0 {
		w.mu.Lock()
		w.own, w.ownEnd = false, "0"
		w.mu.Unlock()
		return nil
	}
	w.ownEnd = msgs[len(msgs)-1].ID
	counts, err := w.deliveries(ctx, msgs)
	if err != nil {
		return err
	}
	w.n.stats.reread.Add(uint64(len(msgs)))
	w.handleRead(ctx, msgs, counts)
	return nil
}

// handleRead handles entries just read: at once, or, for a reship worker,
// as a batch in flight beside the others.
func (w *worker) handleRead(ctx context.Context, msgs []goredis.XMessage, counts map[string]int64) {
	if w.flights != nil {
		w.flights.launch(ctx, w, msgs, counts)
		return
	}
	w.process(ctx, msgs, counts, nil)
}

// sendAcks acknowledges the entries whose XACK waits for the next read.
func (w *worker) sendAcks(ctx context.Context) {
	if acks := w.takeAcks(); len(acks) > 0 {
		w.acked(acks, w.n.cfg.Client.XAck(ctx, w.stream, w.name, acks...).Err())
	}
}

// acked records the outcome of the XACK of acks. Entries whose XACK
// failed stay pending, and are acknowledged with the next read; if this
// process stops first, they come back after ClaimIdle: at least once.
func (w *worker) acked(acks []string, err error) {
	if err != nil {
		w.n.cfg.Logger.Warn("redis: acknowledging entries failed", "hop", w.hop, "stream", w.stream, "err", err)
		w.mu.Lock()
		w.acks = append(w.acks, acks...)
		w.mu.Unlock()
		return
	}
	w.n.stats.acked.Add(uint64(len(acks)))
}

// claim takes over the next entries pending longer than ClaimIdle, with
// XAUTOCLAIM, learns their delivery counts from XPENDING, and handles them.
// Once the scan of the pending entries is through, the next one waits for
// half of ClaimIdle.
func (w *worker) claim(ctx context.Context) error {
	w.sendAcks(ctx)
	msgs, next, err := w.n.cfg.Client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{Stream: w.stream,
		Group: w.name, Consumer: w.consumer, MinIdle: w.n.cfg.ClaimIdle, Start: w.cursor,
		Count: w.n.readCount()}).Result()
	if err != nil {
		return fmt.Errorf("redis: claim from %s: %w", w.stream, err)
	}
	if w.cursor = next; next == "0-0" {
		w.nextClaim = time.Now().Add(w.n.cfg.ClaimIdle / 2)
	}
	if len(msgs) == 0 {
		return nil
	}
	counts, err := w.deliveries(ctx, msgs)
	if err != nil {
		return err // the entries are ours now; they come back after ClaimIdle
	}
	w.n.stats.claimed.Add(uint64(len(msgs)))
	w.handleRead(ctx, msgs, counts)
	return nil
}

// deliveries returns the delivery counts of msgs, just claimed by this
// consumer, paging through its pending entries in their ID range.
func (w *worker) deliveries(ctx context.Context, msgs []goredis.XMessage) (map[string]int64, error) {
	counts := make(map[string]int64, len(msgs))
	start, end := msgs[0].ID, msgs[len(msgs)-1].ID
	for {
		page, err := w.n.cfg.Client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: w.stream,
			Group: w.name, Start: start, End: end, Count: int64(2 * len(msgs)), Consumer: w.consumer}).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: pending of %s: %w", w.stream, err)
		}
		for _, p := range page {
			counts[p.ID] = p.RetryCount
		}
		if len(page) < 2*len(msgs) {
			return counts, nil
		}
		start = "(" + page[len(page)-1].ID
	}
}

// process handles a batch of entries: it decodes their requests,
// dead-letters those that cannot be decoded or were delivered too often,
// hands the rest on, and settles each entry by the outcomes of its
// requests. Requests whose next hop is unavailable are retried here until
// it is back or ctx ends. Of a claimed entry whose earlier delivery left
// some requests failing, only those are handled again. f is the batch's
// place among a reship worker's batches in flight, nil for other groups.
func (w *worker) process(ctx context.Context, msgs []goredis.XMessage, counts map[string]int64, f *flight) {
	w.n.stats.read.Add(uint64(len(msgs)))
	var records []string
	if counts != nil {
		records = w.lastErrors(ctx, msgs)
	}
	entries := make([]*entry, len(msgs))
	var live []*item
	for i, m := range msgs {
		e := &entry{msg: m, deliveries: counts[m.ID]}
		entries[i] = e
		frames, err := decodeFrames(m.Values)
		if err != nil {
			e.err = fmt.Errorf("entry %s of %s: %w", m.ID, w.stream, err)
			continue
		}
		var rec failures
		if records != nil {
			rec = parseFailures(records[i])
		}
		e.items = make([]item, len(frames))
		for j, f := range frames {
			it := &e.items[j]
			*it = item{e: e, index: j, req: f.req, raw: f.raw, err: f.err}
			last, failing := rec.of(j)
			switch {
			case !failing:
				it.out = done // handed on by an earlier delivery
			case it.err != nil:
				it.err = fmt.Errorf("entry %s of %s: %w", m.ID, w.stream, it.err)
				it.out = dead
			case e.deliveries > int64(w.n.cfg.MaxAttempts):
				if last == "" {
					last = "unknown: its consumer stopped without reporting"
				}
				it.err = fmt.Errorf("%w: gave up after %d deliveries; last error: %s", errGaveUp, e.deliveries-1, last)
				it.out = dead
			default:
				live = append(live, it)
			}
		}
	}
	// Handling goes on for a grace period after ctx ends, so a shutdown
	// does not waste the work under way; waits between retries end with ctx.
	hctx, cancel := graceful(ctx, shutdownGrace)
	defer cancel()
	for round := 1; ; round++ {
		began := time.Now()
		later := w.handleAll(hctx, live, f)
		if round == 1 && f != nil {
			w.flights.link.observe(time.Since(began)) // the batch's time to the peer's answer
		}
		if err := w.settle(hctx, entries, counts != nil, later); err != nil {
			// Unacknowledged entries are claimed after ClaimIdle, or, when
			// Redis could not be reached, reread by this worker once it is
			// back.
			if unavailable(err) {
				w.setOwn()
			}
			return
		}
		var stalled []*item
		for _, it := range live {
			if it.out == stall {
				stalled = append(stalled, it)
			}
		}
		if len(stalled) == 0 {
			return
		}
		if round == 1 {
			w.n.stats.stalled.Add(1)
			w.n.cfg.Logger.Warn("redis: next hop unavailable, holding entries", "hop", w.hop,
				"requests", len(stalled), "err", stalled[0].err)
		}
		if !w.await(ctx, stalled, round) {
			return // still pending: claimed after ClaimIdle, here or elsewhere
		}
		live = stalled
	}
}

// errGaveUp is the error of requests dead-lettered after MaxAttempts.
var errGaveUp = errors.New("too many deliveries")

// failures is the record of an entry that a delivery left pending because
// some of its requests failed: their positions in the entry and errors.
// A record that is not of this form (an older one) holds one error for
// every request. The zero value says every request is still to be handled.
type failures struct {
	byIndex map[int]string
	all     string
	known   bool
}

func parseFailures(s string) failures {
	if s == "" {
		return failures{}
	}
	var m map[int]string
	if err := json.Unmarshal([]byte(s), &m); err != nil || m == nil {
		return failures{all: s}
	}
	return failures{byIndex: m, known: true}
}

// of returns the last error of request i and whether it still fails.
func (f failures) of(i int) (string, bool) {
	if !f.known {
		return f.all, true
	}
	last, ok := f.byIndex[i]
	return last, ok
}

// handleAll hands the requests of live on, BatchSize at a time (or all at
// once, see group.whole), sets each one's outcome, and returns the writes
// deferred to the acknowledgement, if any.
func (w *worker) handleAll(ctx context.Context, live []*item, f *flight) *deferred {
	if len(live) == 0 {
		return nil
	}
	reqs := make([]*dcsync.Request, len(live))
	raw := make(map[*dcsync.Request]string, len(live))
	for i, it := range live {
		reqs[i] = it.req
		raw[it.req] = it.raw
	}
	var later *deferred
	if w.defers {
		later = w.n.dedupe.prefetch(ctx, reqs, raw, w.n.cfg.BatchSize)
	}
	size := w.n.cfg.BatchSize
	if w.whole {
		size = len(live)
	}
	for start := 0; start < len(live); start += size {
		end := min(start+size, len(live))
		for i, err := range w.handle(ctx, reqs[start:end], raw, later, f) {
			it := live[start+i]
			it.err, it.out = err, classify(err)
		}
	}
	return later
}

// await waits before stalled requests are retried, keeping their entries
// claimed by this consumer meanwhile, and reports whether to retry (false
// when ctx ended).
func (w *worker) await(ctx context.Context, stalled []*item, attempt int) bool {
	w.sendAcks(ctx) // before the wait, lest what is settled be claimed meanwhile
	deadline := time.Now().Add(w.n.cfg.ClaimIdle / 3)
	for {
		if !wait.Sleep(ctx, w.n.cfg.Backoff.Delay(min(attempt, 30))) {
			return false
		}
		if time.Now().After(deadline) {
			// Reset their idle time without counting a delivery (JUSTID),
			// so no other worker claims what this one is retrying.
			var ids []string
			for i, it := range stalled {
				if i == 0 || it.e != stalled[i-1].e {
					ids = append(ids, it.e.msg.ID)
				}
			}
			_ = w.n.cfg.Client.XClaimJustID(ctx, &goredis.XClaimArgs{Stream: w.stream, Group: w.name,
				Consumer: w.consumer, Messages: ids}).Err()
			deadline = time.Now().Add(w.n.cfg.ClaimIdle / 3)
		}
		if w.probe == nil || w.probe(ctx) == nil {
			return true
		}
		attempt++
	}
}

// lastErrors returns the failure record of each of msgs, "" where there is
// none.
func (w *worker) lastErrors(ctx context.Context, msgs []goredis.XMessage) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	out := make([]string, len(msgs))
	vals, err := w.n.cfg.Client.HMGet(ctx, w.failures(), ids...).Result()
	if err != nil {
		return out
	}
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out
}

// settle writes what handling deferred, and then records, in one MULTI,
// the outcome of each entry not settled yet whose requests are all through:
// the dead letters of its dead requests, and then its acknowledgement, or,
// when some of its requests are to be retried, the record of their errors,
// kept for the next delivery, which handles only those. Entries with
// requests stalled or abandoned stay pending as they are. It returns nil
// when it all went through; when it did not, no entry was acknowledged.
func (w *worker) settle(ctx context.Context, entries []*entry, claimed bool, later *deferred) error {
	var ack, forget, deadReqs []string
	var deadVals [][]any
	var failed []any
	var now []*entry
	for _, e := range entries {
		if e.settled {
			continue
		}
		if e.err != nil {
			deadVals = append(deadVals, w.deadEntry(e))
			ack = append(ack, e.msg.ID)
			now = append(now, e)
			continue
		}
		open := false
		var retrying map[int]string
		for i := range e.items {
			switch it := &e.items[i]; it.out {
			case stall, abandon:
				open = true
			case retry:
				if retrying == nil {
					retrying = map[int]string{}
				}
				retrying[it.index] = it.err.Error()
			}
		}
		if open {
			continue
		}
		var deadItems []*item
		for i := range e.items {
			if it := &e.items[i]; it.out == dead {
				deadItems = append(deadItems, it)
				if it.req != nil {
					forget = append(forget, it.req.ID)
					deadReqs = append(deadReqs, it.req.ID)
				} else {
					deadReqs = append(deadReqs, fmt.Sprintf("%s/%d", e.msg.ID, it.index))
				}
			}
		}
		if folded(deadItems) {
			deadVals = append(deadVals, w.deadFolded(e, deadItems))
		} else {
			for _, it := range deadItems {
				deadVals = append(deadVals, w.deadItem(it))
			}
		}
		if retrying != nil {
			rec, _ := json.Marshal(retrying)
			failed = append(failed, e.msg.ID, rec)
		} else {
			ack = append(ack, e.msg.ID)
		}
		now = append(now, e)
	}
	if !later.empty() {
		// Before the acknowledgements, which must not go through without it.
		if err := later.flush(ctx, w.n.cfg.Client, w.n.apply); err != nil {
			w.n.cfg.Logger.Warn("redis: handing off entries failed", "hop", w.hop, "stream", w.stream, "err", err)
			return err
		}
	}
	if len(now) == 0 {
		return nil
	}
	if len(deadVals) == 0 && len(failed) == 0 && !claimed {
		// Only acknowledgements: they go with the next read.
		w.mu.Lock()
		w.acks = append(w.acks, ack...)
		w.mu.Unlock()
		for _, e := range now {
			e.settled = true
		}
		return nil
	}
	_, err := w.n.cfg.Client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, v := range deadVals {
			p.XAdd(ctx, &goredis.XAddArgs{Stream: w.n.dead, Values: v})
		}
		if len(ack) > 0 {
			p.XAck(ctx, w.stream, w.name, ack...)
		}
		if len(failed) > 0 {
			p.HSet(ctx, w.failures(), failed...)
		}
		if claimed && len(ack) > 0 {
			p.HDel(ctx, w.failures(), ack...)
		}
		return nil
	})
	if err != nil {
		// Unacknowledged entries come back after ClaimIdle: at least once.
		w.n.cfg.Logger.Warn("redis: acknowledging entries failed", "hop", w.hop, "stream", w.stream, "err", err)
		return err
	}
	for _, e := range now {
		e.settled = true
	}
	w.n.stats.acked.Add(uint64(len(ack)))
	if len(deadVals) == 0 {
		return nil
	}
	w.n.stats.deadLettered.Add(uint64(len(deadVals)))
	w.n.cfg.Logger.Error("redis: dead-lettered", "hop", w.hop, "stream", w.stream,
		"requests", deadReqs, "entries", len(deadVals)-len(deadReqs), "dead", w.n.dead)
	if w.onDead != nil && len(forget) > 0 {
		if err := w.onDead(ctx, forget); err != nil {
			w.n.cfg.Logger.Warn("redis: after dead-lettering", "hop", w.hop, "err", err)
		}
	}
	return nil
}

// Fields of a dead-letter entry, besides the original's "id" and "r".
const (
	fieldHop        = "hop"
	fieldStream     = "stream"
	fieldEntry      = "entry"
	fieldIndex      = "index"
	fieldDeliveries = "deliveries"
	fieldReason     = "reason"
)

// deadEntry returns the dead letter of an entry that could not be decoded,
// with the fields it had that this package knows.
func (w *worker) deadEntry(e *entry) []any {
	v := []any{fieldHop, w.hop, fieldStream, w.stream, fieldEntry, e.msg.ID,
		fieldDeliveries, max(e.deliveries, 1), fieldReason, e.err.Error()}
	for _, f := range []string{fieldID, fieldRequest, fieldCount, fieldBatch} {
		if s, ok := e.msg.Values[f].(string); ok {
			v = append(v, f, s)
		}
	}
	return v
}

// deadItem returns the dead letter of one request of an entry.
func (w *worker) deadItem(it *item) []any {
	v := []any{fieldHop, w.hop, fieldStream, w.stream, fieldEntry, it.e.msg.ID, fieldIndex, it.index,
		fieldDeliveries, max(it.e.deliveries, 1), fieldReason, it.err.Error(), fieldRequest, it.raw}
	if it.req != nil {
		v = append(v, fieldID, it.req.ID)
	}
	return v
}

// maxDeadItems is how many requests of one entry get dead letters of
// their own; past it, the entry gets one dead letter for all of them.
const maxDeadItems = 16

// folded reports whether the dead requests of one entry go into one dead
// letter: when there are many, so that a crafted entry cannot cost more
// dead letters than a handful.
func folded(items []*item) bool { return len(items) > maxDeadItems }

// deadFolded returns the one dead letter of the dead requests of an
// entry: the whole entry's fields, the index of the first, and a reason
// that counts them and quotes a few.
func (w *worker) deadFolded(e *entry, items []*item) []any {
	const sample = 3
	var reason strings.Builder
	fmt.Fprintf(&reason, "%d of the entry's %d requests dead-lettered together (the entry is kept whole)", len(items), len(e.items))
	for i, it := range items[:min(len(items), sample)] {
		fmt.Fprintf(&reason, "; request %d: %.200s", it.index, it.err.Error())
		if i == sample-1 && len(items) > sample {
			fmt.Fprintf(&reason, "; and %d more", len(items)-sample)
		}
	}
	v := []any{fieldHop, w.hop, fieldStream, w.stream, fieldEntry, e.msg.ID, fieldIndex, items[0].index,
		fieldDeliveries, max(e.deliveries, 1), fieldReason, reason.String()}
	for _, f := range []string{fieldCount, fieldBatch} {
		if s, ok := e.msg.Values[f].(string); ok {
			v = append(v, f, s)
		}
	}
	return v
}

// create creates the group, reading the stream from its start, so that
// entries added before any worker ran are not skipped.
func (g *group) create(ctx context.Context) error {
	err := g.n.cfg.Client.XGroupCreateMkStream(ctx, g.stream, g.name, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redis: create group %s on %s: %w", g.name, g.stream, err)
	}
	return nil
}

func isNoGroup(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOGROUP")
}

// shutdownGrace is how long a batch under way may take to finish once
// Run's context has ended. What it leaves unfinished stays pending, and is
// claimed after ClaimIdle.
const shutdownGrace = 5 * time.Second

// graceful returns a context that ends grace after ctx does, and a func
// that releases it.
func graceful(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var timer *time.Timer
	var mu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		timer = time.AfterFunc(grace, cancel)
		mu.Unlock()
	})
	return g, func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}
