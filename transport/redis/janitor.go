package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// janitor trims acknowledged entries from the streams of groups every
// TrimInterval until ctx ends, and removes consumers long gone from the
// groups.
func (n *Node) janitor(ctx context.Context, groups []*group) {
	t := time.NewTicker(n.cfg.TrimInterval)
	defer t.Stop()
	mine := n.cfg.Consumer + ":"
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen := map[string]bool{}
		for _, g := range groups {
			if seen[g.stream] {
				continue
			}
			seen[g.stream] = true
			if err := n.trim(ctx, g.stream); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Debug("redis: trim failed", "stream", g.stream, "err", err)
			}
		}
		for _, g := range groups {
			if err := n.forgetConsumers(ctx, g, mine); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Debug("redis: consumer cleanup failed", "stream", g.stream, "err", err)
			}
		}
	}
}

// trim removes the entries of stream that every group has acknowledged:
// those before the oldest entry some group has pending, or, for a group
// with none pending, before the last entry it read. Entries not yet read by
// a group come after that one, so nothing unacknowledged is dropped. A
// stream without groups is left alone: nobody has read it yet.
func (n *Node) trim(ctx context.Context, stream string) error {
	groups, err := n.cfg.Client.XInfoGroups(ctx, stream).Result()
	if err != nil || len(groups) == 0 {
		return err
	}
	var minID streamID
	for i, g := range groups {
		id := g.LastDeliveredID
		if g.Pending > 0 {
			p, err := n.cfg.Client.XPending(ctx, stream, g.Name).Result()
			if err != nil {
				return fmt.Errorf("redis: pending of %s in %s: %w", g.Name, stream, err)
			}
			if p.Count > 0 {
				id = p.Lower
			}
		}
		sid, err := parseStreamID(id)
		if err != nil {
			return err
		}
		if i == 0 || sid.less(minID) {
			minID = sid
		}
	}
	if minID == (streamID{}) {
		return nil
	}
	trimmed, err := n.cfg.Client.XTrimMinID(ctx, stream, minID.String()).Result()
	if err != nil {
		return fmt.Errorf("redis: trim %s: %w", stream, err)
	}
	n.stats.trimmed.Add(uint64(trimmed))
	return nil
}

// forgetConsumers removes from g the consumers of other processes that have
// nothing pending and have not read for staleConsumer: processes that
// stopped. Their names are random per process, so they would pile up.
func (n *Node) forgetConsumers(ctx context.Context, g *group, mine string) error {
	consumers, err := n.cfg.Client.XInfoConsumers(ctx, g.stream, g.name).Result()
	if err != nil {
		return err
	}
	for _, c := range consumers {
		if c.Pending == 0 && c.Idle > n.staleConsumer && !strings.HasPrefix(c.Name, mine) {
			if err := n.cfg.Client.XGroupDelConsumer(ctx, g.stream, g.name, c.Name).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// streamID is a stream entry ID: milliseconds and a sequence number.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	ms, seq, _ := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return streamID{}, fmt.Errorf("redis: bad stream ID %q", s)
	}
	return streamID{a, b}, nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

func (a streamID) String() string { return fmt.Sprintf("%d-%d", a.ms, a.seq) }
