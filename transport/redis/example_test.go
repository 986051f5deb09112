package redis_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	dchttp "github.com/dcsync/dcsync/transport/http"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// Two datacenters, each a Node on its own Redis reaching the other's, and a
// Syncer wired by it; the Nodes' workers run until the context ends (in a
// service, signal.NotifyContext's). A write taken in unicom is applied in
// telecom.
func ExampleNewNode() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	servers := map[string]*goredis.Client{
		"unicom":  goredis.NewClient(&goredis.Options{Addr: os.Getenv("UNICOM_REDIS")}),
		"telecom": goredis.NewClient(&goredis.Options{Addr: os.Getenv("TELECOM_REDIS")}),
	}
	peerOf := map[string]string{"unicom": "telecom", "telecom": "unicom"}
	arrived := make(chan *dcsync.Request, 1)

	syncers := map[string]*dcsync.Syncer{}
	var workers sync.WaitGroup
	for dc, peer := range peerOf {
		node, err := dcredis.NewNode(dcredis.NodeConfig{DC: dc, Client: servers[dc],
			Peers: map[string]goredis.UniversalClient{peer: servers[peer]}})
		if err != nil {
			log.Fatal(err)
		}
		cache := dcsync.ProcessorFunc(func(ctx context.Context, req *dcsync.Request) error {
			if req.Origin != dc {
				arrived <- req // a service applies req to its database and cache
			}
			return nil
		})
		syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: cache, Audit: memaudit.New(0)}))
		if err != nil {
			log.Fatal(err)
		}
		syncers[dc] = syncer
		workers.Go(func() { _ = node.Run(ctx, syncer) })
	}

	// Once Write returns, the write is in unicom's outbound stream.
	req := &dcsync.Request{Key: "user:42", Op: "set", Payload: []byte(`{"name":"alice"}`)}
	if err := syncers["unicom"].Write(ctx, req); err != nil {
		log.Fatal(err)
	}
	got := <-arrived
	fmt.Printf("telecom applied %s %s from %s\n", got.Key, got.Payload, got.Origin)

	stop()
	workers.Wait() // the batches under way finish
	for dc, s := range syncers {
		s.Close()
		servers[dc].Close()
	}
	// Output:
	// telecom applied user:42 {"name":"alice"} from unicom
}

// One reconciler per datacenter is active at a time, however many processes
// run one: the others find the lock taken and their passes read nothing.
// When the leader releases the lock, or dies and the lock expires, the next
// pass of another takes over.
func ExampleNode_Lock() {
	ctx := context.Background()
	local := goredis.NewClient(&goredis.Options{Addr: os.Getenv("UNICOM_REDIS")})
	defer local.Close()
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "unicom", Client: local})
	if err != nil {
		log.Fatal(err)
	}
	rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: memaudit.New(0),
		Peers: node.Senders(), Lock: node.Lock(), Checkpoints: node.Checkpoints()})
	if err != nil {
		log.Fatal(err)
	}

	// Another process of unicom leads.
	other, err := node.Lock().Acquire(ctx, "another-process", time.Minute)
	fmt.Println("another process leads:", other, err)
	rep, err := rec.RunOnce(ctx)
	fmt.Println("this one leads:", rep.Leader, err)
	if err := node.Lock().Release(ctx, "another-process"); err != nil {
		log.Fatal(err)
	}
	// Output:
	// another process leads: true <nil>
	// this one leads: false <nil>
}

// An operator's look at what the hops gave up on, and why: here a request
// that no collector accepts, for it has no key.
func ExampleNode_DeadLetters() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	unicomRedis := goredis.NewClient(&goredis.Options{Addr: os.Getenv("UNICOM_REDIS")})
	telecomRedis := goredis.NewClient(&goredis.Options{Addr: os.Getenv("TELECOM_REDIS")})
	defer unicomRedis.Close()
	defer telecomRedis.Close()
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "telecom", Client: telecomRedis,
		Peers: map[string]goredis.UniversalClient{"unicom": unicomRedis}})
	if err != nil {
		log.Fatal(err)
	}
	syncer, err := dcsync.New(node.Wire(dcsync.Config{
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })}))
	if err != nil {
		log.Fatal(err)
	}
	defer syncer.Close()
	done := make(chan struct{})
	go func() { _ = node.Run(ctx, syncer); close(done) }()
	defer func() { stop(); <-done }()

	// What a broken peer might put into telecom's inbound stream.
	unicom, err := dcredis.NewNode(dcredis.NodeConfig{DC: "unicom", Client: unicomRedis,
		Peers: map[string]goredis.UniversalClient{"telecom": telecomRedis}})
	if err != nil {
		log.Fatal(err)
	}
	bad := &dcsync.Request{ID: "req-1", Origin: "unicom", Op: "set", Version: 1}
	if err := unicom.Senders()["telecom"].Send(ctx, []*dcsync.Request{bad}); err != nil {
		log.Fatal(err)
	}

	// Page through the dead letters, oldest first.
	for {
		page, err := node.DeadLetters(ctx, "", 100)
		if err != nil {
			log.Fatal(err)
		}
		if len(page) > 0 {
			d := page[0]
			fmt.Printf("%s gave up on request %s of %s: %s (deliveries: %d)\n",
				d.Hop, d.RequestID, d.Stream, d.Reason, d.Deliveries)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output:
	// collect:unicom gave up on request req-1 of {dcsync:telecom}:inbound:unicom: dcsync: invalid request: empty key (deliveries: 1)
}

// A Dedupe shared by the collectors of every process of a datacenter, for
// Syncers wired without a Node (Node.Wire installs one), here over HTTP: a
// batch that reaches two processes of telecom — a retry landing on the
// other one — is applied once.
func ExampleNewDedupe() {
	local := goredis.NewClient(&goredis.Options{Addr: os.Getenv("TELECOM_REDIS")})
	defer local.Close()
	dedupe := dcredis.NewDedupe(local, dcredis.DedupeOptions{Prefix: "svc:dedupe:", Retention: 6 * time.Hour})
	var applied atomic.Int64
	process := func() *dcsync.Syncer {
		toUnicom, err := dchttp.NewSender(dchttp.SenderConfig{URL: "https://unicom.example:8443/dcsync",
			From: "telecom", Secret: []byte("the secret telecom and unicom share")})
		if err != nil {
			log.Fatal(err)
		}
		syncer, err := dcsync.New(dcsync.Config{DC: "telecom", Dedupe: dedupe,
			Peers: map[string]dcsync.Sender{"unicom": toUnicom},
			Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error {
				applied.Add(1)
				return nil
			})})
		if err != nil {
			log.Fatal(err)
		}
		return syncer
	}
	first, second := process(), process()
	defer first.Close()
	defer second.Close()

	batch := []*dcsync.Request{{ID: uuid.NewString(), Origin: "unicom", Key: "user:7", Op: "set", Version: 1 << 16}}
	for _, p := range []*dcsync.Syncer{first, second} {
		fmt.Println("collected:", p.Collector().Collect(context.Background(), "unicom", batch))
	}
	fmt.Println("applied:", applied.Load())
	// Output:
	// collected: <nil>
	// collected: <nil>
	// applied: 1
}
