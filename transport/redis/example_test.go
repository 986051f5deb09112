package redis_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// A datacenter's main(): its own Redis, its peer's, a Node wiring the
// Syncer to Redis Streams, and the Node's workers running until a signal.
func ExampleNewNode() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	local := goredis.NewClient(&goredis.Options{Addr: "10.0.1.5:6379"})   // unicom's Redis
	telecom := goredis.NewClient(&goredis.Options{Addr: "10.8.1.5:6379"}) // telecom's Redis
	defer local.Close()
	defer telecom.Close()

	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "unicom", Client: local,
		Peers: map[string]goredis.UniversalClient{"telecom": telecom}})
	if err != nil {
		log.Fatal(err)
	}
	cache := dcsync.ProcessorFunc(func(ctx context.Context, req *dcsync.Request) error {
		return nil // apply req to this datacenter's database and cache
	})
	syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: cache, Audit: auditmem.New(0)}))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		// Once Write returns, the write is in unicom's outbound stream.
		req := &dcsync.Request{Key: "user:42", Op: "set", Payload: []byte(`{"name":"alice"}`)}
		if err := syncer.Write(ctx, req); err != nil {
			log.Print(err)
		}
	}()
	_ = node.Run(ctx, syncer) // until SIGTERM; then the batches under way finish
	syncer.Close()
}

// One reconciler per datacenter is active at a time: the others find the
// lock taken and skip their passes.
func ExampleNode_Lock() {
	local := goredis.NewClient(&goredis.Options{Addr: "10.0.1.5:6379"})
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "unicom", Client: local})
	if err != nil {
		log.Fatal(err)
	}
	rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: auditmem.New(0),
		Peers: node.Senders(), Lock: node.Lock(), Checkpoints: node.Checkpoints()})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := rec.RunOnce(context.Background())
	fmt.Println(rep.Leader, err)
}

// An operator's look at what the hops gave up on, and why.
func ExampleNode_DeadLetters() {
	local := goredis.NewClient(&goredis.Options{Addr: "10.0.1.5:6379"})
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "telecom", Client: local})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	after := ""
	for {
		page, err := node.DeadLetters(ctx, after, 100)
		if err != nil {
			log.Fatal(err)
		}
		if len(page) == 0 {
			return
		}
		for _, d := range page {
			fmt.Printf("%s %s: %s entry %s, request %s, %d deliveries: %s\n",
				d.ID, d.Hop, d.Stream, d.Entry, d.RequestID, d.Deliveries, d.Reason)
		}
		after = page[len(page)-1].ID
	}
}

// A Dedupe shared by every collector of a datacenter, for a Syncer wired
// without a Node (Node.Wire installs one).
func ExampleNewDedupe() {
	local := goredis.NewClient(&goredis.Options{Addr: "10.0.1.5:6379"})
	dedupe := dcredis.NewDedupe(local, dcredis.DedupeOptions{Prefix: "svc:dedupe:", Retention: 6 * time.Hour})
	_, err := dcsync.New(dcsync.Config{DC: "telecom", Dedupe: dedupe,
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })})
	fmt.Println(err)
}
