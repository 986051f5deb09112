package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/monitor"
)

var _ monitor.Streams = (*Node)(nil)

// StreamStats implements monitor.Streams, for the gauges of metrics/prom
// (prom.Options.Streams): the streams this datacenter's Redis holds, read
// with one pipeline of XLEN and XINFO GROUPS, which change nothing. They
// are named without prefix or datacenter, a bounded set of labels:
//
//   - "outbound": this datacenter's writes; Pending sums its groups (the
//     local apply group and one per peer);
//   - "inbound:<peer>": the writes a peer added for this datacenter;
//   - "apply": the collected writes waiting to be applied;
//   - "dead": the dead letters, whose count is also its DeadLetters.
//
// A stream not created yet has length 0. Every process of a datacenter
// reports the same figures, read from the shared Redis.
func (n *Node) StreamStats(ctx context.Context) ([]monitor.StreamStat, error) {
	names := []string{"outbound"}
	peers := make([]string, 0, len(n.cfg.Peers))
	for peer := range n.cfg.Peers {
		peers = append(peers, peer)
	}
	slices.Sort(peers)
	for _, peer := range peers {
		names = append(names, "inbound:"+peer)
	}
	names = append(names, "apply", "dead")
	lens := make([]*goredis.IntCmd, len(names))
	groups := make([]*goredis.XInfoGroupsCmd, len(names))
	_, err := n.cfg.Client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, name := range names {
			key := Key(n.cfg.Prefix, n.cfg.DC, name)
			lens[i] = p.XLen(ctx, key)
			if name != "dead" { // no consumer group reads the dead letters
				groups[i] = p.XInfoGroups(ctx, key)
			}
		}
		return nil
	})
	if err != nil && !isNoSuchKey(err) {
		return nil, fmt.Errorf("redis: stream stats of %s: %w", n.cfg.DC, err)
	}
	stats := make([]monitor.StreamStat, len(names))
	for i, name := range names {
		st := monitor.StreamStat{Stream: name}
		if st.Length, err = lens[i].Result(); err != nil {
			return nil, fmt.Errorf("redis: length of stream %s: %w", name, err)
		}
		if groups[i] != nil {
			gs, err := groups[i].Result()
			if err != nil && !isNoSuchKey(err) {
				return nil, fmt.Errorf("redis: groups of stream %s: %w", name, err)
			}
			for _, g := range gs {
				st.Pending += g.Pending
			}
		}
		if name == "dead" {
			st.DeadLetters = st.Length
		}
		stats[i] = st
	}
	return stats, nil
}

// isNoSuchKey reports whether err is Redis's answer to XINFO GROUPS on a
// stream that does not exist yet.
func isNoSuchKey(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "no such key")
}

// DeadLetterSource returns a monitor.Source that puts the oldest count dead
// letters of this datacenter (at least one) into a Snapshot's
// DeadLetters, for the status page (package admin) and `dcsync status`;
// what it cannot read goes to the Snapshot's Problems.
//
//	mon.AddSource(node.DeadLetterSource(50))
func (n *Node) DeadLetterSource(count int64) monitor.Source {
	count = max(count, 1)
	return monitor.SourceFunc(func(ctx context.Context, s *monitor.Snapshot) {
		dls, err := n.DeadLetters(ctx, "", count)
		if err != nil {
			s.Problems = append(s.Problems, "dead letters: "+err.Error())
			return
		}
		for _, d := range dls {
			s.DeadLetters = append(s.DeadLetters, monitor.DeadLetter{ID: d.ID, Hop: d.Hop,
				RequestID: d.RequestID, Reason: d.Reason})
		}
	})
}
