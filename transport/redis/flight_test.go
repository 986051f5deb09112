package redis

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// fenceRig sends batches of one key each through the fence of a worker of
// unicom's reship hop into telecom's inbound stream, in client's Redis.
type fenceRig struct {
	t      *testing.T
	client goredis.UniversalClient
	n      *Node
	stream string
	fs     *flights
}

func newFenceRig(t *testing.T, client goredis.UniversalClient) *fenceRig {
	n, err := NewNode(NodeConfig{DC: "unicom", Client: client, Peers: map[string]goredis.UniversalClient{"telecom": client}})
	if err != nil {
		t.Fatal(err)
	}
	stream := n.inbound("telecom", "unicom")
	return &fenceRig{t: t, client: client, n: n, stream: stream, fs: newFlights(stream+":fence:test", nil)}
}

// flight returns batch seq of the rig's worker, after prev, fenced.
func (r *fenceRig) flight(seq uint64, prev *flight) *flight {
	return &flight{fs: r.fs, seq: seq, prev: prev, done: make(chan struct{}), arrived: make(chan struct{})}
}

func (r *fenceRig) send(ctx context.Context, f *flight, key string) error {
	s := fencedSender{rawSender{&Sender{n: r.n, client: r.client, stream: r.stream, max: 256}, nil}, f}
	return s.Send(ctx, []*dcsync.Request{{ID: key, Key: key, Origin: "unicom", Op: "set", Payload: []byte(key)}})
}

// sendParked sends f in the background once the one before it is not
// there yet, and returns once the peer parked it.
func (r *fenceRig) sendParked(ctx context.Context, f *flight, key string) <-chan error {
	r.t.Helper()
	res := make(chan error, 1)
	before := r.client.HLen(context.Background(), r.fs.park).Val()
	go func() { res <- r.send(ctx, f, key) }()
	eventually(r.t, 10*time.Second, func() bool { return r.client.HLen(context.Background(), r.fs.park).Val() > before },
		func() string { return "batch " + key + " was not parked" })
	return res
}

// keys returns the keys of the stream's requests, in order.
func (r *fenceRig) keys() []string {
	r.t.Helper()
	msgs, err := r.client.XRange(context.Background(), r.stream, "-", "+").Result()
	if err != nil {
		r.t.Fatal(err)
	}
	var keys []string
	for _, m := range msgs {
		frames, err := decodeFrames(m.Values)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, f := range frames {
			keys = append(keys, f.req.Key)
		}
	}
	return keys
}

// expect fails unless the stream holds want and nothing is left parked.
func (r *fenceRig) expect(want ...string) {
	r.t.Helper()
	if keys := r.keys(); !slices.Equal(keys, want) {
		r.t.Fatalf("stream holds %v; want %v", keys, want)
	}
	if l := r.client.HLen(context.Background(), r.fs.park).Val(); l != 0 {
		r.t.Fatalf("%d fields left parked; want 0", l)
	}
}

// A reship batch that reaches the peer's Redis before its predecessor is
// parked, and added right after it when the predecessor comes: the stream
// holds the worker's batches in the order they were read. A batch sent
// again after its answer was lost is not added twice.
func TestFenceKeepsTheOrderOfBatchesInFlight(t *testing.T) {
	fenceKeepsOrder(t, newClient(t, testserver.StartRedis(t).Addr()))
}

// The fence, its park and the inbound stream share a hash slot: the script
// runs on a Redis Cluster.
func TestFenceOnACluster(t *testing.T) {
	cluster := testserver.StartRedisCluster(t)
	fenceKeepsOrder(t, newClusterClient(t, cluster.Addrs()))
}

func fenceKeepsOrder(t *testing.T, client goredis.UniversalClient) {
	r := newFenceRig(t, client)
	ctx := context.Background()
	f1 := r.flight(1, nil)
	f2 := r.flight(2, f1)
	f3 := r.flight(3, f2)
	third := r.sendParked(ctx, f3, "c")
	second := r.sendParked(ctx, f2, "b")
	if l := client.XLen(ctx, r.stream).Val(); l != 0 {
		t.Fatalf("%d entries in the stream before the first batch came; want 0", l)
	}
	if err := r.send(ctx, f1, "a"); err != nil {
		t.Fatal(err)
	}
	for _, res := range []<-chan error{second, third} {
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if err := r.send(ctx, f1, "a"); err != nil { // its answer lost, sent again
		t.Fatal(err)
	}
	r.expect("a", "b", "c")
}

// A parked batch whose predecessor is given up (never added) is not left
// in the park: once the predecessor is through it goes free, into the
// stream.
func TestFenceParkedBatchBehindOneGivenUp(t *testing.T) {
	r := newFenceRig(t, newClient(t, testserver.StartRedis(t).Addr()))
	f1 := r.flight(1, nil)
	f2 := r.flight(2, f1)
	second := r.sendParked(context.Background(), f2, "b")
	close(f1.done) // handled without being added
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	r.expect("b")
}

// A parked batch whose Send ends fails, so the worker sends it again; if
// its predecessor comes meanwhile it is added from the park, once.
func TestFenceParkedBatchWhoseSendEnds(t *testing.T) {
	r := newFenceRig(t, newClient(t, testserver.StartRedis(t).Addr()))
	f1 := r.flight(1, nil)
	f2 := r.flight(2, f1)
	ctx, cancel := context.WithCancel(context.Background())
	second := r.sendParked(ctx, f2, "b")
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("Send of a parked batch whose context ended: %v; want context.Canceled", err)
	}
	if err := r.send(context.Background(), f1, "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.send(context.Background(), f2, "b"); err != nil { // the retry
		t.Fatal(err)
	}
	r.expect("a", "b")
}

// A worker that restarts has a fence of its own: what the earlier run left
// parked (never acknowledged, so read again) neither blocks nor joins its
// batches.
func TestFenceOfARestartedWorker(t *testing.T) {
	r := newFenceRig(t, newClient(t, testserver.StartRedis(t).Addr()))
	f1 := r.flight(1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	old := r.sendParked(ctx, r.flight(2, f1), "b")
	cancel()
	<-old
	oldPark := r.fs.park
	r.fs = newFlights(r.stream+":fence:test", nil)
	g1 := r.flight(1, nil)
	g2 := r.flight(2, g1)
	if err := r.send(context.Background(), g1, "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.send(context.Background(), g2, "b"); err != nil {
		t.Fatal(err)
	}
	r.expect("a", "b")
	if ttl := r.client.PTTL(context.Background(), oldPark).Val(); ttl <= 0 || ttl > fenceTTL {
		t.Fatalf("the earlier run's park expires in %v; want within %v", ttl, fenceTTL)
	}
}

// A fenced batch after a plain one (the link lengthened between them) is
// added once the plain one is through, whatever the fence says.
func TestFenceAfterAPlainBatch(t *testing.T) {
	r := newFenceRig(t, newClient(t, testserver.StartRedis(t).Addr()))
	f1 := r.flight(1, nil)
	f1.plain = true
	f2 := r.flight(2, f1)
	second := make(chan error, 1)
	go func() { second <- r.send(context.Background(), f2, "b") }()
	if err := r.send(context.Background(), f1, "a"); err != nil {
		t.Fatal(err)
	}
	close(f1.done)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	r.expect("a", "b")
}

// The workers of a link take turns: each reserves the next free slot, a
// slot every round trip / (maxFlights × workers), so that their batches
// leave evenly rather than together.
func TestLinkSpacesItsWorkersReads(t *testing.T) {
	l := new(link)
	a, b := newFlights("a", l), newFlights("b", l)
	const rtt = 64 * time.Second // slots of 4 s: no call here takes that long
	first := l.reserve(rtt)
	if d := time.Since(first); d < 0 || d > time.Second {
		t.Fatalf("the first slot on an idle link is %v from now, want now", -d)
	}
	slot := rtt / (2 * maxFlights)
	for i := 1; i <= 3; i++ {
		if got, want := l.reserve(rtt), first.Add(time.Duration(i)*slot); !got.Equal(want) {
			t.Fatalf("slot %d at %v, want %v (a slot every %v)", i, got.Sub(first), want.Sub(first), slot)
		}
	}
	b.close() // one worker left: its slots come every eighth of the round trip
	last := first.Add(3 * slot)
	if got, want := l.reserve(rtt), last.Add(slot); !got.Equal(want) {
		t.Fatalf("next slot at %v, want %v", got.Sub(first), want.Sub(first))
	}
	if got, want := l.reserve(rtt), last.Add(slot+rtt/maxFlights); !got.Equal(want) {
		t.Fatalf("with one worker, next slot at %v, want %v", got.Sub(first), want.Sub(first))
	}
	a.close()
}

// A worker with maxFlights batches in flight takes no slot on the link
// until one of them is through: its pace waits for a place first, so the
// slots go to workers that can use them.
func TestPaceWaitsForAPlaceBeforeASlot(t *testing.T) {
	l := new(link)
	l.observe(64 * time.Second)
	fs := newFlights("a", l)
	for range maxFlights {
		fs.sem <- struct{}{} // maxFlights batches in flight
	}
	ctx, cancel := context.WithCancel(context.Background())
	paced := make(chan struct{})
	go func() { fs.pace(ctx); close(paced) }()
	time.Sleep(20 * time.Millisecond) // the pace starts, and waits
	// Another worker's reserves meanwhile come one after another from now:
	// the waiting pace took none of them.
	other := newFlights("b", l)
	first := l.reserve(64 * time.Second)
	if d := time.Since(first); d < 0 || d > time.Second {
		t.Fatalf("the waiting worker took a slot: the next is %v from now", -d)
	}
	cancel()
	<-paced
	if fs.held {
		t.Fatal("a pace ended by its context holds a place")
	}
	<-fs.sem // a batch is through: now the worker takes a place and a slot
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	fs.pace(ctx) // ends with ctx, waiting for its slot
	if !fs.held {
		t.Fatal("pace returned without a place for the next batch")
	}
	slot := 64 * time.Second / (2 * maxFlights)
	if got, want := l.reserve(64*time.Second), first.Add(2*slot); !got.Equal(want) {
		t.Fatalf("after the worker's pace, the next free slot is at %v, want %v (the worker took the one after the other's)",
			got.Sub(first), want.Sub(first))
	}
	other.close()
	fs.close()
}
