package rediscache_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// startCache starts a redis-server for the test and returns a Cache over
// it, and a client for looking at what the Cache stored.
func startCache(t testing.TB, opts rediscache.Options) (*rediscache.Cache, *redis.Client) {
	t.Helper()
	srv := testserver.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })
	return rediscache.New(client, opts), client
}

// write returns a write as it arrives at a processor.
func write(id, origin, key, op string, version uint64, payload string) *dcsync.Request {
	r := &dcsync.Request{ID: id, Origin: origin, Key: key, Op: op, Version: version}
	if payload != "" {
		r.Payload = []byte(payload)
	}
	return r
}

// mustApply applies req and returns whether the Cache applied it.
func mustApply(t testing.TB, c *rediscache.Cache, req *dcsync.Request) bool {
	t.Helper()
	ok, err := c.Apply(context.Background(), req)
	if err != nil {
		t.Fatalf("apply %s: %v", req.ID, err)
	}
	return ok
}

// entry returns the entry of key, failing the test when it has none.
func entry(t testing.TB, c *rediscache.Cache, key string) rediscache.Entry {
	t.Helper()
	e, found, err := c.GetVersioned(context.Background(), key)
	if err != nil || !found {
		t.Fatalf("GetVersioned(%q) = %+v, %v, %v", key, e, found, err)
	}
	return e
}
