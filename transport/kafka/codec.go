package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// A record carries one request: its Key is the request's Key, so that the
// default partitioner keeps a key's writes in one partition of every topic,
// in order; its Value is the request as a one-request Batch of dcsync's
// wire protocol (binary protobuf); header "id" names the request for
// whoever reads the topic by hand. Kafka batches records itself, so a hop
// costs the broker one produce and one fetch per batch, not per request.

// headerID is the record header that names the request.
const headerID = "id"

// maxRecord bounds the decoded size of a record's value.
const maxRecord = 8 << 20

// record returns the record that carries req to topic.
func record(topic string, req *dcsync.Request) (*kgo.Record, error) {
	v, err := wire.Encode(nil, []*dcsync.Request{req}, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	if err != nil {
		return nil, fmt.Errorf("kafka: encode %s: %w", req.ID, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(req.Key), Value: v,
		Headers: []kgo.RecordHeader{{Key: headerID, Value: []byte(req.ID)}}}, nil
}

// decode returns the request r carries. Its error matches dcsync.ErrInvalid.
func decode(r *kgo.Record) (*dcsync.Request, error) {
	reqs, err := wire.Decode(r.Value, wire.Proto, wire.Encoding_ENCODING_IDENTITY, maxRecord, 1)
	if err != nil {
		return nil, fmt.Errorf("kafka: record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if len(reqs) != 1 {
		return nil, fmt.Errorf("kafka: record %s/%d@%d carries %d requests: %w", r.Topic, r.Partition, r.Offset, len(reqs), dcsync.ErrInvalid)
	}
	return reqs[0], nil
}
