package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// A reship batch that reaches the peer's Redis before its predecessor is
// parked, and added right after it when the predecessor comes: the stream
// holds the worker's batches in the order they were read. A batch sent
// again after its answer was lost is not added twice.
func TestFenceKeepsTheOrderOfBatchesInFlight(t *testing.T) {
	srv := testserver.StartRedis(t)
	client := newClient(t, srv.Addr())
	n, err := NewNode(NodeConfig{DC: "unicom", Client: client, Peers: map[string]goredis.UniversalClient{"telecom": client}})
	if err != nil {
		t.Fatal(err)
	}
	stream := n.inbound("telecom", "unicom")
	fs := newFlights(stream + ":fence:test")
	newFlight := func(seq uint64, prev *flight) *flight {
		return &flight{fs: fs, seq: seq, prev: prev, done: make(chan struct{}), arrived: make(chan struct{})}
	}
	f1 := newFlight(1, nil)
	f2 := newFlight(2, f1)
	send := func(f *flight, key string) error {
		s := fencedSender{rawSender{&Sender{n: n, client: client, stream: stream, max: 256}, nil}, f}
		return s.Send(context.Background(), []*dcsync.Request{{ID: key, Key: key, Origin: "unicom", Op: "set", Payload: []byte(key)}})
	}
	second := make(chan error, 1)
	go func() { second <- send(f2, "b") }()
	ctx := context.Background()
	// The second batch is parked, not added, until the first comes.
	eventually(t, 10*time.Second, func() bool { return client.HLen(ctx, fs.fence+":parked").Val() > 0 },
		func() string { return "the second batch was not parked" })
	if l := client.XLen(ctx, stream).Val(); l != 0 {
		t.Fatalf("%d entries in the stream before the first batch came; want 0", l)
	}
	if err := send(f1, "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if err := send(f1, "a"); err != nil { // its answer lost, sent again
		t.Fatal(err)
	}
	msgs, err := client.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range msgs {
		frames, err := decodeFrames(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			keys = append(keys, f.req.Key)
		}
	}
	if len(keys) != 2 || keys[0] != "a" || keys[1] != "b" {
		t.Fatalf("stream holds %v; want [a b]", keys)
	}
	if l := client.HLen(ctx, fs.fence+":parked").Val(); l != 0 {
		t.Fatalf("%d fields left parked; want 0", l)
	}
}
