package rediscache_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// TestMain starts a redis-server for the examples, which find it in
// REDIS_ADDR as a program would find its Redis.
func TestMain(m *testing.M) { os.Exit(testserver.RedisMain(m, "REDIS_ADDR")) }

// A Cache is the Processor of a datacenter's Syncer: writes taken here and
// writes collected from peers land in the local Redis, newest first.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	defer client.Close()
	cache := rediscache.New(client, rediscache.Options{Prefix: "example:"})

	syncer, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: cache})
	if err != nil {
		log.Fatal(err)
	}
	defer syncer.Close()
	if err := syncer.Write(ctx, &dcsync.Request{Key: "user:1", Op: rediscache.OpSet, Payload: []byte("alice")}); err != nil {
		log.Fatal(err)
	}
	value, found, err := cache.Get(ctx, "user:1")
	fmt.Printf("%s %v %v\n", value, found, err)

	if err := syncer.Write(ctx, &dcsync.Request{Key: "user:1", Op: rediscache.OpDelete}); err != nil {
		log.Fatal(err)
	}
	_, found, _ = cache.Get(ctx, "user:1")
	fmt.Println("found after delete:", found)
	// Output:
	// alice true <nil>
	// found after delete: false
}

// Apply reports whether a write was newer than the stored entry: writes
// arriving late, or twice, change nothing.
func ExampleCache_Apply() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	defer client.Close()
	cache := rediscache.New(client, rediscache.Options{Prefix: "example-apply:"})

	newer := &dcsync.Request{ID: "w2", Origin: "telecom", Key: "k", Op: rediscache.OpSet, Version: 200, Payload: []byte("new")}
	older := &dcsync.Request{ID: "w1", Origin: "unicom", Key: "k", Op: rediscache.OpSet, Version: 100, Payload: []byte("old")}
	for _, req := range []*dcsync.Request{newer, older, newer} {
		applied, err := cache.Apply(ctx, req)
		fmt.Println(req.ID, "applied:", applied, err)
	}
	value, _, _ := cache.Get(ctx, "k")
	fmt.Printf("k = %s\n", value)
	// Output:
	// w2 applied: true <nil>
	// w1 applied: false <nil>
	// w2 applied: false <nil>
	// k = new
}

// GetVersioned shows the write behind an entry, tombstones included; Get
// hides them.
func ExampleCache_GetVersioned() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	defer client.Close()
	cache := rediscache.New(client, rediscache.Options{Prefix: "example-versioned:"})

	if _, err := cache.Apply(ctx, &dcsync.Request{ID: "d1", Origin: "telecom", Key: "k", Op: rediscache.OpDelete, Version: 300}); err != nil {
		log.Fatal(err)
	}
	e, found, _ := cache.GetVersioned(ctx, "k")
	fmt.Printf("found %v, deleted %v, version %d, origin %s, id %s\n", found, e.Deleted, e.Version, e.Origin, e.ID)
	fmt.Println(client.HGetAll(ctx, "example-versioned:k").Val())
	// Output:
	// found true, deleted true, version 300, origin telecom, id d1
	// map[del:1 id:d1 origin:telecom ver:300]
}

// ProcessBatch applies a batch in one round trip and names the requests
// that failed.
func ExampleCache_ProcessBatch() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	defer client.Close()
	cache := rediscache.New(client, rediscache.Options{Prefix: "example-batch:"})

	err := cache.ProcessBatch(ctx, []*dcsync.Request{
		{ID: "a", Origin: "unicom", Key: "a", Op: rediscache.OpSet, Version: 100, Payload: []byte("1")},
		{ID: "b", Origin: "unicom", Key: "b", Op: "incr", Version: 100},
		{ID: "c", Origin: "unicom", Key: "c", Op: rediscache.OpSet, Version: 100, Payload: []byte("3")},
	})
	var be *dcsync.BatchError
	if errors.As(err, &be) {
		for i, err := range be.Errs {
			fmt.Println(i, err)
		}
	}
	fmt.Printf("%+v\n", cache.Stats())
	// Output:
	// 0 <nil>
	// 1 dcsync: invalid request: rediscache: unknown op "incr" of request b (want "set" or "delete")
	// 2 <nil>
	// {Applied:2 Stale:0}
}
