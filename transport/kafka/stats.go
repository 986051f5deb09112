package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/dcsync/dcsync/monitor"
)

var _ monitor.Topics = (*Node)(nil)

// TopicStats implements monitor.Topics, for the gauges of metrics/prom
// (prom.Options.Topics): per hop, the records of the topic it reads and
// how many of them its consumer group has not committed, read from this
// datacenter's cluster with kadm (start and end offsets, the groups'
// committed offsets), which changes nothing. Topics and hops are named
// without prefix or datacenter, a bounded set of labels:
//
//   - "outbound" read by "local" (applied here) and by "reship:<peer>"
//     (shipped to the peer), one stat each;
//   - "inbound:<peer>", the writes a peer produced for this datacenter,
//     read by "collect";
//   - "apply", the collected writes, read by "apply";
//   - "dead", the dead letters, read by no hop: Lag 0, DeadLetters its
//     records.
//
// A group that has committed nothing on a partition is behind by all of
// the partition's records (its workers start at the earliest); a topic not
// created yet has no records. Every process of a datacenter reports the
// same figures, read from the shared cluster; with the commits every
// CommitInterval, Lag counts up to that much more than is left to do.
func (n *Node) TopicStats(ctx context.Context) ([]monitor.TopicStat, error) {
	type read struct{ topic, name, hop, group string }
	peers := slices.Sorted(maps.Keys(n.cfg.Peers))
	reads := []read{{n.outbound, "outbound", "local", n.group("local")}}
	for _, peer := range peers {
		reads = append(reads, read{n.outbound, "outbound", "reship:" + peer, n.group("reship." + peer)})
	}
	for _, peer := range peers {
		reads = append(reads, read{n.inbound(n.cfg.DC, peer), "inbound:" + peer, "collect", n.group("collect")})
	}
	reads = append(reads, read{n.apply, "apply", "apply", n.group("apply")}, read{n.dead, "dead", "", ""})
	var topics []string
	for _, r := range reads {
		if !slices.Contains(topics, r.topic) {
			topics = append(topics, r.topic)
		}
	}

	adm := kadm.NewClient(n.local)
	starts, err := offsets(adm.ListStartOffsets(ctx, topics...))
	if err != nil {
		return nil, fmt.Errorf("kafka: start offsets of %s: %w", n.cfg.DC, err)
	}
	ends, err := offsets(adm.ListEndOffsets(ctx, topics...))
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", n.cfg.DC, err)
	}
	committed := map[string]kadm.OffsetResponses{}
	for _, r := range reads {
		if _, ok := committed[r.group]; ok || r.group == "" {
			continue
		}
		// A group that never committed has no offsets, and no error.
		got, err := adm.FetchOffsets(ctx, r.group)
		if err == nil {
			err = got.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("kafka: committed offsets of group %s: %w", r.group, err)
		}
		committed[r.group] = got
	}

	stats := make([]monitor.TopicStat, len(reads))
	for i, r := range reads {
		st := monitor.TopicStat{Topic: r.name, Hop: r.hop}
		for p, end := range ends[r.topic] {
			start := starts[r.topic][p]
			st.Records += end - start
			if r.group == "" {
				continue
			}
			at := start
			if c, ok := committed[r.group].Lookup(r.topic, p); ok && c.At > start {
				at = c.At
			}
			st.Lag += max(end-at, 0)
		}
		if r.name == "dead" {
			st.DeadLetters = st.Records
		}
		stats[i] = st
	}
	return stats, nil
}

// offsets returns listed offsets by topic and partition, leaving out the
// topics that do not exist yet.
func offsets(listed kadm.ListedOffsets, err error) (map[string]map[int32]int64, error) {
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			err = fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err)
		default:
			if out[o.Topic] == nil {
				out[o.Topic] = map[int32]int64{}
			}
			out[o.Topic][o.Partition] = o.Offset
		}
	})
	return out, err
}

// DeadLetterSource returns a monitor.Source that puts the first count dead
// letters of this datacenter (at least one) into a Snapshot's
// DeadLetters, for the status page (package admin) and `dcsync status`;
// what it cannot read goes to the Snapshot's Problems. A dead letter's ID
// there is where its record was: "<topic>/<partition>/<offset>".
//
//	mon.AddSource(node.DeadLetterSource(50))
func (n *Node) DeadLetterSource(count int) monitor.Source {
	count = max(count, 1)
	return monitor.SourceFunc(func(ctx context.Context, s *monitor.Snapshot) {
		dls, err := n.DeadLetters(ctx, count)
		if err != nil {
			s.Problems = append(s.Problems, "dead letters: "+err.Error())
			return
		}
		for _, d := range dls {
			id := d.Topic + "/" + strconv.Itoa(int(d.Partition)) + "/" + strconv.FormatInt(d.Offset, 10)
			s.DeadLetters = append(s.DeadLetters, monitor.DeadLetter{ID: id, Hop: d.Hop,
				RequestID: d.RequestID, Reason: d.Reason})
		}
	})
}
