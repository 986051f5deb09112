package hop_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/hop"
)

// queue stands for a durable queue of an MQ wiring (a Redis stream, a
// Kafka topic); as a Sender, it is a peer's inbound queue.
type queue struct {
	mu   sync.Mutex
	reqs []*dcsync.Request
}

func (q *queue) Send(_ context.Context, reqs []*dcsync.Request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reqs = append(q.reqs, reqs...)
	return nil
}

func (q *queue) Close() error { return nil }

// take returns what the queue holds, as a worker reads a batch.
func (q *queue) take() []*dcsync.Request {
	q.mu.Lock()
	defer q.mu.Unlock()
	reqs := q.reqs
	q.reqs = nil
	return reqs
}

// outbox is a datacenter's outbound queue: a WriteAheadReship, whose
// workers apply the writes it takes here and ship them.
type outbox struct{ queue }

func (o *outbox) Reship(ctx context.Context, req *dcsync.Request) error {
	return o.Send(ctx, []*dcsync.Request{req})
}

func (o *outbox) WritesAhead() {}

// printer is a Processor that prints what it applies in dc.
func printer(dc string) dcsync.Processor {
	return dcsync.ProcessorFunc(func(_ context.Context, req *dcsync.Request) error {
		fmt.Printf("%s applied %s=%s\n", dc, req.Key, req.Payload)
		return nil
	})
}

// The four hops of an MQ wiring, each a worker's step, over queues in
// memory: unicom's local and reship hops read its outbound queue, and
// telecom's collect hop reads its inbound queue into its apply queue,
// which its apply hop applies.
func Example() {
	ctx := context.Background()
	out, inbound, applyQueue := &outbox{}, &queue{}, &queue{}
	unicom, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: printer("unicom"), Reship: out,
		Peers: map[string]dcsync.Sender{"telecom": inbound}})
	if err != nil {
		panic(err)
	}
	defer unicom.Close()
	telecom, err := dcsync.New(dcsync.Config{DC: "telecom", Processor: printer("telecom"),
		Peers: map[string]dcsync.Sender{"unicom": &queue{}}})
	if err != nil {
		panic(err)
	}
	defer telecom.Close()

	// Write only queues the write: nothing is applied yet.
	if err := unicom.Write(ctx, &dcsync.Request{Key: "greeting", Op: "set", Payload: []byte("hello")}); err != nil {
		panic(err)
	}
	batch := out.take()
	fmt.Println("local:", hop.Err(hop.Of(unicom).Apply(ctx, batch)))
	fmt.Println("reship:", hop.Err(hop.Of(unicom).Ship(ctx, "telecom", nil, batch)))

	next := func(ctx context.Context, reqs []*dcsync.Request) []error {
		return hop.Errs(applyQueue.Send(ctx, reqs), len(reqs))
	}
	fmt.Println("collect:", hop.Err(hop.Of(telecom).Collect(ctx, "unicom", inbound.take(), nil, next)))
	fmt.Println("apply:", hop.Err(hop.Of(telecom).Apply(ctx, applyQueue.take())))
	// Output:
	// unicom applied greeting=hello
	// local: <nil>
	// reship: <nil>
	// collect: <nil>
	// telecom applied greeting=hello
	// apply: <nil>
}
