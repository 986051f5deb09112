package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// group is one consumer group on one stream of this datacenter's Redis, and
// what its workers do with the requests they read.
type group struct {
	n      *Node
	stream string
	name   string
	hop    string // names the hop in consumer names, logs and dead letters
	// handle hands reqs on to the next hop and returns each one's error.
	handle func(ctx context.Context, reqs []*dcsync.Request) []error
	// probe, when set, checks that the next hop is back before a stalled
	// batch is retried, so an outage costs pings rather than failed sends.
	probe func(ctx context.Context) error
	// onDead, when set, is told the request IDs dead-lettered.
	onDead func(ctx context.Context, ids []string) error
	// defers says that handle runs dcsync's Collector over the Node's Dedupe
	// and Handoff, whose writes are then deferred to the acknowledgement.
	defers bool
}

// failures is the hash, beside each stream, that keeps the last error of
// entries left pending for a retry, so that whichever worker finally
// dead-letters one can say why.
func (g *group) failures() string { return g.stream + ":failures:" + g.name }

// entry is one stream entry in the hands of a worker.
type entry struct {
	msg        goredis.XMessage
	req        *dcsync.Request // nil when the entry could not be decoded
	deliveries int64           // for claimed entries: deliveries so far, this one included
	err        error
	out        outcome
}

// work reads and handles batches as consumer until ctx ends. It never
// returns early: Redis errors are logged and retried with backoff.
func (g *group) work(ctx context.Context, consumer string) {
	w := &worker{group: g, consumer: consumer, cursor: "0-0"}
	for ctx.Err() == nil {
		var err error
		if !time.Now().Before(w.nextClaim) {
			err = w.claim(ctx)
		} else {
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
		}
		if err != nil {
			w.failing++
			if w.failing == 1 {
				g.n.cfg.Logger.Warn("redis: stream worker failing, retrying", "hop", g.hop,
					"stream", g.stream, "consumer", consumer, "err", err)
			}
			sleep(ctx, g.n.cfg.Backoff.Delay(min(w.failing, 30)))
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
}

// read handles the next batch of new entries, if any arrive within Block.
func (w *worker) read(ctx context.Context) error {
	res, err := w.n.cfg.Client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: w.name,
		Consumer: w.consumer, Streams: []string{w.stream, ">"}, Count: int64(w.n.cfg.BatchSize),
		Block: w.n.cfg.Block}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("redis: read %s: %w", w.stream, err)
	}
	for _, s := range res {
		if len(s.Messages) > 0 {
			w.process(ctx, s.Messages, nil)
		}
	}
	return nil
}

// claim takes over the next entries pending longer than ClaimIdle, with
// XAUTOCLAIM, learns their delivery counts from XPENDING, and handles them.
// Once the scan of the pending entries is through, the next one waits for
// half of ClaimIdle.
func (w *worker) claim(ctx context.Context) error {
	msgs, next, err := w.n.cfg.Client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{Stream: w.stream,
		Group: w.name, Consumer: w.consumer, MinIdle: w.n.cfg.ClaimIdle, Start: w.cursor,
		Count: int64(w.n.cfg.BatchSize)}).Result()
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
	w.process(ctx, msgs, counts)
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

// process handles a batch: it decodes the entries, dead-letters those that
// cannot be decoded or were delivered too often, hands the rest on, and
// settles each by its outcome. Entries whose next hop is unavailable are
// retried here until it is back or ctx ends.
func (w *worker) process(ctx context.Context, msgs []goredis.XMessage, counts map[string]int64) {
	w.n.stats.read.Add(uint64(len(msgs)))
	var lastErrs []string
	if counts != nil {
		lastErrs = w.lastErrors(ctx, msgs)
	}
	slab := make([]entry, len(msgs))
	batch := make([]*entry, len(msgs))
	var live []*entry
	for i, m := range msgs {
		e := &slab[i]
		batch[i] = e
		e.msg, e.deliveries = m, counts[m.ID]
		e.req, e.err = decodeEntry(m.Values)
		switch {
		case e.err != nil:
			e.err = fmt.Errorf("entry %s of %s: %w", m.ID, w.stream, e.err)
		case e.deliveries > int64(w.n.cfg.MaxAttempts):
			last := "unknown: its consumer stopped without reporting"
			if lastErrs[i] != "" {
				last = lastErrs[i]
			}
			e.err = fmt.Errorf("%w: gave up after %d deliveries; last error: %s", errGaveUp, e.deliveries-1, last)
		default:
			live = append(live, e)
			continue
		}
		e.out = dead
	}
	// Handling goes on for a grace period after ctx ends, so a shutdown
	// does not waste the work under way; waits between retries end with ctx.
	hctx, cancel := graceful(ctx, shutdownGrace)
	defer cancel()
	for round := 1; ; round++ {
		w.settle(hctx, batch, counts != nil, w.handleAll(hctx, live))
		var stalled []*entry
		for _, e := range live {
			if e.out == stall {
				stalled = append(stalled, e)
			}
		}
		if len(stalled) == 0 {
			return
		}
		if round == 1 {
			w.n.stats.stalled.Add(1)
			w.n.cfg.Logger.Warn("redis: next hop unavailable, holding entries", "hop", w.hop,
				"entries", len(stalled), "err", stalled[0].err)
		}
		if !w.await(ctx, stalled, round) {
			return // still pending: claimed after ClaimIdle, here or elsewhere
		}
		batch, live = stalled, stalled
	}
}

// errGaveUp is the error of entries dead-lettered after MaxAttempts.
var errGaveUp = errors.New("too many deliveries")

// handleAll hands the requests of live on, sets each one's outcome, and
// returns the writes deferred to the acknowledgement, if any.
func (w *worker) handleAll(ctx context.Context, live []*entry) *deferred {
	if len(live) == 0 {
		return nil
	}
	reqs := make([]*dcsync.Request, len(live))
	raw := make(map[*dcsync.Request]string, len(live))
	for i, e := range live {
		reqs[i] = e.req
		raw[e.req], _ = e.msg.Values[fieldRequest].(string)
	}
	ctx = withRaw(ctx, raw)
	var later *deferred
	if w.defers {
		ctx, later = w.n.dedupe.preclaim(ctx, reqs)
	}
	for i, err := range w.handle(ctx, reqs) {
		live[i].err, live[i].out = err, classify(err)
	}
	return later
}

// await waits before stalled entries are retried, keeping them claimed by
// this consumer meanwhile, and reports whether to retry (false when ctx
// ended).
func (w *worker) await(ctx context.Context, stalled []*entry, attempt int) bool {
	deadline := time.Now().Add(w.n.cfg.ClaimIdle / 3)
	for {
		if !sleep(ctx, w.n.cfg.Backoff.Delay(min(attempt, 30))) {
			return false
		}
		if time.Now().After(deadline) {
			// Reset their idle time without counting a delivery (JUSTID),
			// so no other worker claims what this one is retrying.
			ids := make([]string, len(stalled))
			for i, e := range stalled {
				ids[i] = e.msg.ID
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

// lastErrors returns the last recorded error of each of msgs, "" where
// there is none.
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

// settle records the outcome of each entry in one MULTI: the writes
// deferred by handling, dead letters, the acknowledgement of handed-on and
// dead-lettered entries, and the error of entries left for a retry, kept
// for whoever dead-letters them. Stalled and abandoned entries stay pending
// as they are.
func (w *worker) settle(ctx context.Context, entries []*entry, claimed bool, later *deferred) {
	var ack, deadIDs, forget []string
	var failed []any
	for _, e := range entries {
		switch e.out {
		case done:
			ack = append(ack, e.msg.ID)
		case dead:
			ack = append(ack, e.msg.ID)
			deadIDs = append(deadIDs, e.msg.ID)
			if e.req != nil {
				forget = append(forget, e.req.ID)
			}
		case retry:
			failed = append(failed, e.msg.ID, e.err.Error())
		}
	}
	if len(ack) == 0 && len(failed) == 0 {
		return
	}
	_, err := w.n.cfg.Client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if later != nil {
			later.write(ctx, p, w.n.apply)
		}
		for _, e := range entries {
			if e.out == dead {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: w.n.dead, Values: w.deadLetter(e)})
			}
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
		return
	}
	w.n.stats.acked.Add(uint64(len(ack)))
	if len(deadIDs) == 0 {
		return
	}
	w.n.stats.deadLettered.Add(uint64(len(deadIDs)))
	w.n.cfg.Logger.Error("redis: entries dead-lettered", "hop", w.hop, "stream", w.stream,
		"entries", deadIDs, "dead", w.n.dead)
	if w.onDead != nil && len(forget) > 0 {
		if err := w.onDead(ctx, forget); err != nil {
			w.n.cfg.Logger.Warn("redis: after dead-lettering", "hop", w.hop, "err", err)
		}
	}
}

// Fields of a dead-letter entry, besides the original's "id" and "r".
const (
	fieldHop        = "hop"
	fieldStream     = "stream"
	fieldEntry      = "entry"
	fieldDeliveries = "deliveries"
	fieldReason     = "reason"
)

func (w *worker) deadLetter(e *entry) []any {
	v := []any{fieldHop, w.hop, fieldStream, w.stream, fieldEntry, e.msg.ID,
		fieldDeliveries, max(e.deliveries, 1), fieldReason, e.err.Error()}
	for _, f := range []string{fieldID, fieldRequest} {
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

// parallel calls fn for each request, up to Concurrency at once, and returns
// each one's error. Requests with the same Key go to the same goroutine, in
// order.
func (n *Node) parallel(ctx context.Context, reqs []*dcsync.Request,
	fn func(context.Context, *dcsync.Request) error) []error {
	errs := make([]error, len(reqs))
	lanes := min(n.cfg.Concurrency, len(reqs))
	if lanes <= 1 {
		for i, req := range reqs {
			errs[i] = fn(ctx, req)
		}
		return errs
	}
	lane := make([]int, len(reqs))
	for i, req := range reqs {
		h := fnv.New32a()
		h.Write([]byte(req.Key))
		lane[i] = int(h.Sum32() % uint32(lanes))
	}
	var wg sync.WaitGroup
	for l := range lanes {
		wg.Go(func() {
			for i, req := range reqs {
				if lane[i] == l {
					errs[i] = fn(ctx, req)
				}
			}
		})
	}
	wg.Wait()
	return errs
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

// sleep waits d or until ctx ends, and reports whether it waited the full d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
