package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/dcsync/dcsync"
)

// DeadLetter is a request, or a whole entry, that a hop gave up on: it
// could not be decoded, its next hop rejected it for good, or it failed
// MaxAttempts deliveries. Of an entry carrying a batch, each request that
// fails for good is dead-lettered on its own, and the rest flow on — up to
// 16 of an entry: when more fail, the entry gets one dead letter for them
// all, holding the whole entry (fields "n" and "b"), the index of the
// first, and a reason counting them with a sample, so that a crafted entry
// cannot multiply into dead letters.
// Dead letters are kept in the stream "{<Prefix>:<DC>}:dead", whose entries
// hold the fields named in brackets below, readable with redis-cli.
type DeadLetter struct {
	ID         string          // ID of the dead letter in the dead-letter stream
	Hop        string          // the hop that gave up: "reship:<peer>", "collect:<peer>", "apply" [hop]
	Stream     string          // the stream the entry was in [stream]
	Entry      string          // the entry's ID in that stream [entry]
	Index      int             // the request's position in the entry; 0 for a whole entry [index]
	Deliveries int             // how many times the entry was delivered [deliveries]
	Reason     string          // why it was given up [reason]
	RequestID  string          // the request ID the entry named, if any [id]
	Request    *dcsync.Request // the request, nil when it could not be decoded [r]
}

// DeadLetters returns up to count dead letters of this datacenter, oldest
// first, starting after the one with ID after ("" for the oldest).
func (n *Node) DeadLetters(ctx context.Context, after string, count int64) ([]DeadLetter, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := n.cfg.Client.XRangeN(ctx, n.dead, start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: read dead letters: %w", err)
	}
	out := make([]DeadLetter, len(msgs))
	for i, m := range msgs {
		out[i] = parseDeadLetter(m.ID, m.Values)
	}
	return out, nil
}

// parseDeadLetter reads the dead letter with ID id and fields values,
// whatever a writer to the stream put there: what cannot be read stays
// zero.
func parseDeadLetter(id string, values map[string]any) DeadLetter {
	str := func(f string) string { s, _ := values[f].(string); return s }
	d := DeadLetter{ID: id, Hop: str(fieldHop), Stream: str(fieldStream), Entry: str(fieldEntry),
		Reason: str(fieldReason), RequestID: str(fieldID)}
	d.Deliveries, _ = strconv.Atoi(str(fieldDeliveries))
	d.Index, _ = strconv.Atoi(str(fieldIndex))
	d.Request, _ = decodeEntry(values)
	return d
}
