package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wait"
)

// stage is a consumer group on this datacenter's cluster, one hop of the
// writes, and what its workers do with the requests they poll.
type stage struct {
	name   string            // "local", "reship:<peer>", "collect", "apply": logs, dead letters
	group  string            // consumer group
	topics []string          // topics it consumes
	from   map[string]string // collect: the sending datacenter by topic
	// handle hands reqs (sent by from, at the collect hop) on, and returns
	// each one's error.
	handle func(ctx context.Context, from string, reqs []*dcsync.Request) []error
	// stallAll retries every failure that is not permanent without
	// counting attempts.
	stallAll bool
}

func sleep(ctx context.Context, d time.Duration) bool { return wait.Sleep(ctx, d) }

// work runs one consumer of h's group until ctx ends. It polls up to
// BatchSize records, hands them on, and marks their offsets for commit
// only once every one is handed on, applied or dead-lettered; the client
// commits marked offsets every CommitInterval, before a rebalance takes
// partitions away (which waits for the batch under way:
// BlockRebalanceOnPoll), and when the worker stops. A crash loses at most
// the commits of the last CommitInterval: those records are handed on
// again, and the collector's dedupe drops them.
func (n *Node) work(ctx context.Context, h *stage, i int) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(n.cfg.Brokers...), kgo.ConsumerGroup(h.group), kgo.ConsumeTopics(h.topics...),
		kgo.AutoCommitMarks(), kgo.AutoCommitInterval(n.cfg.CommitInterval), kgo.BlockRebalanceOnPoll(), kgo.FetchMaxWait(n.cfg.Block),
		kgo.FetchMinBytes(n.cfg.FetchMinBytes), kgo.SessionTimeout(n.cfg.SessionTimeout), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ClientID(fmt.Sprintf("%s:%s:%d", n.cfg.Consumer, h.name, i))}, n.cfg.ClientOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		n.cfg.Logger.Error("kafka: consumer not started", "dc", n.cfg.DC, "hop", h.name, "err", err)
		return
	}
	defer func() {
		// Commit what was handed on even though ctx has ended, but not
		// for long; then leave the group: the others take its partitions
		// at once.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			n.cfg.Logger.Warn("kafka: commit failed", "dc", n.cfg.DC, "hop", h.name, "err", err)
		}
		cancel()
		cl.AllowRebalance()
		cl.Close()
	}()
	fails := 0
	var polled time.Time // when the last poll returned
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, n.cfg.BatchSize)
		since := time.Since(polled)
		polled = time.Now()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		recs := fetches.Records()
		if errs := fetches.Errors(); len(errs) > 0 && len(recs) == 0 {
			fails++
			n.cfg.Logger.Debug("kafka: fetch failed", "dc", n.cfg.DC, "hop", h.name, "err", errs[0].Err)
			cl.AllowRebalance()
			sleep(ctx, n.cfg.Backoff.Delay(min(fails, 8)))
			continue
		}
		fails = 0
		if len(recs) > 0 {
			n.stats.read.Add(uint64(len(recs)))
			if !n.handle(ctx, h, recs) {
				return // shutting down: unmarked, delivered again
			}
			// Handed on, applied or dead-lettered: the offsets may be
			// committed, which the client does every CommitInterval and
			// before it gives up partitions.
			cl.MarkCommitRecords(recs...)
			n.stats.committed.Add(uint64(len(recs)))
		}
		cl.AllowRebalance()
		if n.gather(len(recs), since) {
			sleep(ctx, n.cfg.Gather) // under load: a larger next batch
		}
	}
}

// gatherFrom is how many records a worker's last poll must have brought,
// and how many must come in one Gather at the rate they came, for the
// worker to wait: with the default 5ms, 3200 records a second on a hop.
const gatherFrom = 16

// gather reports whether a worker that polled k records, since after its
// previous poll, waits Gather before polling again (NodeConfig.Gather):
// only when the batch was large (gatherFrom records; a poll that finds a
// buffered fetch may bring a few records at once at any rate), came at a
// rate that brings gatherFrom in one Gather, and was not full (a backlog
// goes on at once). The rate counts the time since the previous poll, a
// wait included: on a machine that stalls the worker, a light load's
// batch after the stall is large but its rate is not, so a wait that
// overran does not make the next batch large enough for another.
func (n *Node) gather(k int, since time.Duration) bool {
	return n.cfg.Gather > 0 && k >= gatherFrom && k < n.cfg.BatchSize &&
		time.Duration(k)*n.cfg.Gather >= gatherFrom*since
}

// pending is a polled record on its way through a hop.
type pending struct {
	rec      *kgo.Record
	req      *dcsync.Request
	attempts int
	err      error
}

// handle hands recs on through h until each is done or dead-lettered, and
// reports false when ctx ended (or the Syncer closed) first. Records go on
// in groups by topic (the collect hop's sender), in poll order.
func (n *Node) handle(ctx context.Context, h *stage, recs []*kgo.Record) bool {
	var dead []pending
	byTopic := map[string][]*pending{}
	var order []string
	for _, r := range recs {
		req, err := decode(r)
		if err != nil {
			dead = append(dead, pending{rec: r, err: err})
			continue
		}
		if _, ok := byTopic[r.Topic]; !ok {
			order = append(order, r.Topic)
		}
		byTopic[r.Topic] = append(byTopic[r.Topic], &pending{rec: r, req: req})
	}
	for _, t := range order {
		d, ok := n.through(ctx, h, h.from[t], byTopic[t])
		if !ok {
			return false
		}
		dead = append(dead, d...)
	}
	return n.bury(ctx, h, dead)
}

// through hands ps on until each is done or given up, and returns those
// given up. It reports false when it had to stop first.
func (n *Node) through(ctx context.Context, h *stage, from string, ps []*pending) ([]pending, bool) {
	var given []pending
	reqs := make([]*dcsync.Request, 0, len(ps))
	for round := 1; len(ps) > 0; round++ {
		reqs = reqs[:0]
		for _, p := range ps {
			reqs = append(reqs, p.req)
		}
		errs := h.handle(ctx, from, reqs)
		left := ps[:0]
		stalled := false
		for k, p := range ps {
			p.err = errs[k]
			switch classify(p.err, h.stallAll) {
			case done:
				continue
			case dead:
				p.attempts++
				given = append(given, *p)
				continue
			case abandon:
				return nil, false
			case stall:
				stalled = true
			case retry:
				if p.attempts++; p.attempts >= n.cfg.MaxAttempts {
					given = append(given, *p)
					continue
				}
				n.stats.retried.Add(1)
			}
			left = append(left, p)
		}
		ps = left
		if len(ps) == 0 {
			break
		}
		if stalled {
			n.stats.stalled.Add(1)
			n.cfg.Logger.Warn("kafka: next hop unavailable; holding", "dc", n.cfg.DC, "hop", h.name,
				"requests", len(ps), "err", ps[0].err)
		}
		if !sleep(ctx, n.cfg.Backoff.Delay(min(round, 16))) {
			return nil, false
		}
	}
	return given, true
}

// bury produces dead letters to the dead-letter topic, retrying until the
// broker has them, and reports false when ctx ended first.
func (n *Node) bury(ctx context.Context, h *stage, dead []pending) bool {
	if len(dead) == 0 {
		return true
	}
	recs := make([]*kgo.Record, len(dead))
	for i, p := range dead {
		n.cfg.Logger.Warn("kafka: dead-lettered", "dc", n.cfg.DC, "hop", h.name, "topic", p.rec.Topic,
			"partition", p.rec.Partition, "offset", p.rec.Offset, "err", p.err)
		recs[i] = &kgo.Record{Topic: n.dead, Key: p.rec.Key, Value: p.rec.Value, Headers: []kgo.RecordHeader{
			{Key: headerHop, Value: []byte(h.name)},
			{Key: headerTopic, Value: []byte(p.rec.Topic)},
			{Key: headerPartition, Value: strconv.AppendInt(nil, int64(p.rec.Partition), 10)},
			{Key: headerOffset, Value: strconv.AppendInt(nil, p.rec.Offset, 10)},
			{Key: headerAttempts, Value: strconv.AppendInt(nil, int64(p.attempts), 10)},
			{Key: headerReason, Value: []byte(p.err.Error())},
		}}
		if p.req != nil {
			recs[i].Headers = append(recs[i].Headers, kgo.RecordHeader{Key: headerID, Value: []byte(p.req.ID)})
		}
	}
	for try := 1; ; try++ {
		err := n.local.ProduceSync(ctx, recs...).FirstErr()
		if err == nil {
			n.stats.deadLettered.Add(uint64(len(recs)))
			return true
		}
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return false
		}
		n.cfg.Logger.Warn("kafka: dead letters not produced; retrying", "dc", n.cfg.DC, "hop", h.name, "err", err)
		if !sleep(ctx, n.cfg.Backoff.Delay(min(try, 16))) {
			return false
		}
	}
}
