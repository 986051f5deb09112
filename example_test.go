package dcsync_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// Two datacenters in one process: what a service's main() wires, with the
// memory transport standing in for HTTP, gRPC or Redis Streams.
func Example() {
	network := memtransport.NewNetwork(1)
	audit := memaudit.New(0)
	var mu sync.Mutex
	cache := map[string]map[string]string{"unicom": {}, "telecom": {}}

	start := func(dc, peer string) *dcsync.Syncer {
		s, err := dcsync.New(dcsync.Config{
			DC:    dc,
			Peers: map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Processor: dcsync.ProcessorFunc(func(ctx context.Context, req *dcsync.Request) error {
				mu.Lock()
				defer mu.Unlock()
				cache[dc][req.Key] = string(req.Payload)
				return nil
			}),
			Audit: audit,
		})
		if err != nil {
			panic(err)
		}
		network.Attach(dc, s.Collector())
		return s
	}
	unicom, telecom := start("unicom", "telecom"), start("telecom", "unicom")
	defer unicom.Close()
	defer telecom.Close()

	// Wait for the peer: this write must not be stale anywhere.
	err := unicom.Write(context.Background(), &dcsync.Request{Key: "user:1", Op: "set", Payload: []byte("Ada")}, dcsync.WaitAll())
	if err != nil {
		panic(err)
	}
	mu.Lock()
	fmt.Println("unicom:", cache["unicom"]["user:1"], "telecom:", cache["telecom"]["user:1"])
	mu.Unlock()
	// Output: unicom: Ada telecom: Ada
}

// A Processor that honours versions: the newest write to a key wins in
// every datacenter, whatever order writes arrive in.
func ExampleProcessorFunc() {
	type entry struct {
		value   string
		version uint64
		origin  string
	}
	var mu sync.Mutex
	store := map[string]entry{}
	p := dcsync.ProcessorFunc(func(ctx context.Context, req *dcsync.Request) error {
		mu.Lock()
		defer mu.Unlock()
		if cur, ok := store[req.Key]; ok && !req.Newer(cur.version, cur.origin) {
			return nil // an older write arriving late: already superseded
		}
		store[req.Key] = entry{string(req.Payload), req.Version, req.Origin}
		return nil
	})
	newer := &dcsync.Request{Key: "k", Payload: []byte("new"), Version: 2 << 16, Origin: "telecom"}
	older := &dcsync.Request{Key: "k", Payload: []byte("old"), Version: 1 << 16, Origin: "unicom"}
	p.Process(context.Background(), newer)
	p.Process(context.Background(), older)
	fmt.Println(store["k"].value)
	// Output: new
}

// A reconciler repairs what the network lost: here every delivery from
// unicom fails until the link heals.
func ExampleReconciler_RunOnce() {
	network := memtransport.NewNetwork(1)
	audit := memaudit.New(0)
	noop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	peers := func(dc, peer string) map[string]dcsync.Sender {
		return map[string]dcsync.Sender{peer: network.Sender(dc, peer)}
	}
	unicom, _ := dcsync.New(dcsync.Config{DC: "unicom", Peers: peers("unicom", "telecom"), Processor: noop, Audit: audit,
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 1}}})
	telecom, _ := dcsync.New(dcsync.Config{DC: "telecom", Peers: peers("telecom", "unicom"), Processor: noop, Audit: audit})
	network.Attach("telecom", telecom.Collector())

	network.SetFaults("unicom", "telecom", memtransport.Faults{Fail: 1})
	for range 3 {
		unicom.Write(context.Background(), &dcsync.Request{Key: "k"})
	}
	unicom.Flush(context.Background())
	network.SetFaults("unicom", "telecom", memtransport.Faults{})

	r, _ := dcsync.NewReconciler(dcsync.ReconcilerConfig{
		DC: "unicom", Peers: peers("unicom", "telecom"), Audit: audit,
		Grace: -1, // the example cannot wait the default 30s for writes in flight
	})
	rep, _ := r.RunOnce(context.Background())
	fmt.Printf("scanned %d, repaired %d, failing %d\n", rep.Scanned, rep.Repaired, rep.Failing)
	// Output: scanned 3, repaired 3, failing 0
}
