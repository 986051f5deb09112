package kafka

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
)

// Headers of a dead letter: the record as it was, with these added.
const (
	headerHop       = "dcsync-hop"
	headerTopic     = "dcsync-topic"
	headerPartition = "dcsync-partition"
	headerOffset    = "dcsync-offset"
	headerAttempts  = "dcsync-attempts"
	headerReason    = "dcsync-reason"
)

// DeadLetter is a record of the dead-letter topic, "<Prefix>.<DC>.dead":
// a request that a hop gave up, with why. Its record is the original one
// (key and value) with headers naming the rest [in brackets].
type DeadLetter struct {
	Hop       string          // the hop that gave up: "local", "reship:<peer>", "collect", "apply" [dcsync-hop]
	Topic     string          // the topic the record was in [dcsync-topic]
	Partition int32           // its partition there [dcsync-partition]
	Offset    int64           // its offset there [dcsync-offset]
	Attempts  int             // how many times it was handled; 0 when it could not be decoded [dcsync-attempts]
	Reason    string          // why it was given up [dcsync-reason]
	RequestID string          // the request's ID, when it could be decoded [id]
	Request   *dcsync.Request // the request, nil when it could not be decoded
	Value     []byte          // the record's value as it was
}

// DeadLetters returns up to count dead letters of this datacenter, in
// partition order, reading the dead-letter topic from its start up to its
// end when called.
func (n *Node) DeadLetters(ctx context.Context, count int) ([]DeadLetter, error) {
	if err := n.Setup(ctx); err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(n.local).ListEndOffsets(ctx, n.dead)
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", n.dead, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.cfg.Brokers...), kgo.ConsumeTopics(n.dead),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, n.cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: read %s: %w", n.dead, err)
	}
	defer cl.Close()
	var out []DeadLetter
	for len(want) > 0 && len(out) < count {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return out, fmt.Errorf("kafka: read %s: %w", n.dead, ctx.Err())
		}
		for _, r := range fetches.Records() {
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			if len(out) < count {
				out = append(out, deadLetter(r))
			}
		}
	}
	return out, nil
}

func deadLetter(r *kgo.Record) DeadLetter {
	d := DeadLetter{Value: r.Value}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case headerHop:
			d.Hop = v
		case headerTopic:
			d.Topic = v
		case headerPartition:
			p, _ := strconv.ParseInt(v, 10, 32)
			d.Partition = int32(p)
		case headerOffset:
			d.Offset, _ = strconv.ParseInt(v, 10, 64)
		case headerAttempts:
			d.Attempts, _ = strconv.Atoi(v)
		case headerReason:
			d.Reason = v
		case headerID:
			d.RequestID = v
		}
	}
	if req, err := decode(r); err == nil {
		d.Request = req
	}
	return d
}
