package rediscache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// The script must order writes exactly as dcsync.Request.Newer does, for
// versions past 2^53 (where a Lua number would round) and for origins that
// a locale-aware comparison would order differently.
func TestApplyOrdersLikeRequestNewer(t *testing.T) {
	c, _ := startCache(t, rediscache.Options{})
	const big = 1 << 60
	cases := []struct {
		name              string
		storedV, incoming uint64
		storedO, inOrigin string
	}{
		{"older version", 200, 100, "a", "z"},
		{"newer version", 100, 200, "z", "a"},
		{"equal version and origin (duplicate)", 100, 100, "a", "a"},
		{"tie, greater origin", 100, 100, "a", "b"},
		{"tie, smaller origin", 100, 100, "b", "a"},
		{"more digits", 99, 100, "a", "a"},
		{"fewer digits", 100, 99, "a", "a"},
		{"past 2^53, one more", big, big + 1, "a", "a"},
		{"past 2^53, one less", big + 1, big, "a", "a"},
		{"tie, lower case after upper case bytewise", 100, 100, "B", "a"},
		{"tie, upper case before lower case bytewise", 100, 100, "a", "B"},
		{"tie, prefix origin", 100, 100, "dc", "dc-2"},
		{"tie, punctuation", 100, 100, "dc_1", "dc-1"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "k" + strconv.Itoa(i)
			if !mustApply(t, c, write("first", tc.storedO, key, rediscache.OpSet, tc.storedV, "first")) {
				t.Fatal("first write to an empty key not applied")
			}
			in := write("second", tc.inOrigin, key, rediscache.OpSet, tc.incoming, "second")
			want := in.Newer(tc.storedV, tc.storedO)
			if got := mustApply(t, c, in); got != want {
				t.Fatalf("applied = %v, Request.Newer says %v", got, want)
			}
			e := entry(t, c, key)
			wantID := map[bool]string{true: "second", false: "first"}[want]
			if e.ID != wantID || string(e.Value) != wantID {
				t.Fatalf("stored %+v, want the %s write", e, wantID)
			}
		})
	}
}

func TestDeleteKeepsVersionedTombstone(t *testing.T) {
	ctx := context.Background()
	c, client := startCache(t, rediscache.Options{})
	mustApply(t, c, write("set1", "unicom", "user:1", rediscache.OpSet, 100, "alice"))
	if !mustApply(t, c, write("del", "telecom", "user:1", rediscache.OpDelete, 300, "ignored")) {
		t.Fatal("newer delete not applied")
	}
	if v, found, err := c.Get(ctx, "user:1"); err != nil || found {
		t.Fatalf("Get after delete = %q, %v, %v; want not found", v, found, err)
	}
	if e := entry(t, c, "user:1"); !e.Deleted || e.Value != nil || e.Version != 300 || e.ID != "del" {
		t.Fatalf("tombstone = %+v", e)
	}
	if ttl := client.PTTL(ctx, "user:1").Val(); ttl <= rediscache.DefaultTombstoneTTL-time.Hour {
		t.Fatalf("tombstone TTL = %v, want about %v", ttl, rediscache.DefaultTombstoneTTL)
	}

	// A set written before the delete, arriving after it, stays deleted.
	if mustApply(t, c, write("late", "unicom", "user:1", rediscache.OpSet, 200, "bob")) {
		t.Fatal("set older than the delete was applied")
	}
	if _, found, _ := c.Get(ctx, "user:1"); found {
		t.Fatal("late older set resurrected the key")
	}
	// An older delete does not replace the tombstone either.
	if mustApply(t, c, write("olddel", "unicom", "user:1", rediscache.OpDelete, 250, "")) {
		t.Fatal("older delete applied over a newer tombstone")
	}

	// A newer set replaces the tombstone and clears its expiry.
	if !mustApply(t, c, write("set2", "unicom", "user:1", rediscache.OpSet, 400, "carol")) {
		t.Fatal("newer set not applied over a tombstone")
	}
	if v, found, err := c.Get(ctx, "user:1"); err != nil || !found || string(v) != "carol" {
		t.Fatalf("Get = %q, %v, %v; want carol", v, found, err)
	}
	if ttl := client.PTTL(ctx, "user:1").Val(); ttl != -1 {
		t.Fatalf("live value has TTL %v, want none", ttl)
	}
	if got := c.Stats(); got != (rediscache.Stats{Applied: 3, Stale: 2}) {
		t.Fatalf("Stats = %+v", got)
	}
}

// Once a tombstone expires the key is unknown again: a write older than the
// delete is applied. This is why TombstoneTTL must outlast delivery.
func TestTombstoneExpiry(t *testing.T) {
	ctx := context.Background()
	c, client := startCache(t, rediscache.Options{TombstoneTTL: time.Millisecond})
	mustApply(t, c, write("del", "unicom", "k", rediscache.OpDelete, 200, ""))
	for i := 0; client.Exists(ctx, "k").Val() == 1; i++ { // Exists removes an expired key
		if i == 1000 {
			t.Fatal("tombstone with a 1ms TTL still there after 1000 polls")
		}
		time.Sleep(time.Millisecond)
	}
	if !mustApply(t, c, write("old", "unicom", "k", rediscache.OpSet, 100, "old")) {
		t.Fatal("write older than an expired tombstone was not applied")
	}

	forever, client2 := startCache(t, rediscache.Options{TombstoneTTL: -1})
	mustApply(t, forever, write("del", "unicom", "k", rediscache.OpDelete, 200, ""))
	if ttl := client2.PTTL(ctx, "k").Val(); ttl != -1 {
		t.Fatalf("TombstoneTTL -1: tombstone TTL %v, want none", ttl)
	}
}

func TestLayoutIsReadable(t *testing.T) {
	ctx := context.Background()
	c, client := startCache(t, rediscache.Options{Prefix: "cache:"})
	v := uint64(1_700_000_000_000)<<16 | 7
	mustApply(t, c, write("id-1", "unicom", "user:1", rediscache.OpSet, v, "alice"))
	got := client.HGetAll(ctx, "cache:user:1").Val()
	want := map[string]string{"v": "alice", "ver": strconv.FormatUint(v, 10), "origin": "unicom", "id": "id-1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("HGETALL cache:user:1 = %v, want %v", got, want)
	}
	mustApply(t, c, write("id-2", "telecom", "user:1", rediscache.OpDelete, v+1, ""))
	got = client.HGetAll(ctx, "cache:user:1").Val()
	want = map[string]string{"del": "1", "ver": strconv.FormatUint(v+1, 10), "origin": "telecom", "id": "id-2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("HGETALL of tombstone = %v, want %v", got, want)
	}
	if n := client.Exists(ctx, "user:1").Val(); n != 0 {
		t.Fatal("key stored without its prefix")
	}
}

func TestEmptyValueIsAValue(t *testing.T) {
	c, _ := startCache(t, rediscache.Options{})
	mustApply(t, c, write("a", "unicom", "k", rediscache.OpSet, 100, ""))
	if v, found, err := c.Get(context.Background(), "k"); err != nil || !found || len(v) != 0 {
		t.Fatalf("Get = %q, %v, %v; want empty, found", v, found, err)
	}
}

func TestInvalidWritesArePermanent(t *testing.T) {
	c, client := startCache(t, rediscache.Options{})
	for _, req := range []*dcsync.Request{
		nil,
		write("a", "unicom", "k", "incr", 100, "1"),
		write("b", "unicom", "k", "", 100, "1"),
		write("c", "unicom", "", rediscache.OpSet, 100, "1"),
		write("d", "unicom", "k", rediscache.OpSet, 0, "1"),
	} {
		_, err := c.Apply(context.Background(), req)
		if !errors.Is(err, dcsync.ErrInvalid) || !dcsync.IsPermanent(err) {
			t.Errorf("Apply(%+v) = %v, want a permanent ErrInvalid", req, err)
		}
	}
	if n := client.DBSize(context.Background()).Val(); n != 0 {
		t.Fatalf("invalid writes stored %d keys", n)
	}
}

func TestProcessBatch(t *testing.T) {
	ctx := context.Background()
	c, _ := startCache(t, rediscache.Options{})
	batch := []*dcsync.Request{
		write("k1-v3", "unicom", "k1", rediscache.OpSet, 300, "v3"),
		write("k1-v1", "unicom", "k1", rediscache.OpSet, 100, "v1"), // older, after: dropped
		write("bad", "unicom", "k2", "incr", 100, ""),
		write("k2-set", "telecom", "k2", rediscache.OpSet, 100, "x"),
		write("k2-del", "unicom", "k2", rediscache.OpDelete, 200, ""),
		write("k2-late", "telecom", "k2", rediscache.OpSet, 150, "y"), // older than the delete
	}
	err := c.ProcessBatch(ctx, batch)
	var be *dcsync.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(batch) {
		t.Fatalf("ProcessBatch = %v, want a BatchError", err)
	}
	for i, e := range be.Errs {
		if (i == 2) != (e != nil) || (e != nil && !errors.Is(e, dcsync.ErrInvalid)) {
			t.Errorf("request %d: error %v", i, e)
		}
	}
	if e := entry(t, c, "k1"); e.ID != "k1-v3" {
		t.Errorf("k1 = %+v, want the newest write", e)
	}
	if e := entry(t, c, "k2"); !e.Deleted || e.ID != "k2-del" {
		t.Errorf("k2 = %+v, want the delete's tombstone", e)
	}
	if got := c.Stats(); got != (rediscache.Stats{Applied: 3, Stale: 2}) {
		t.Errorf("Stats = %+v", got)
	}
	if err := c.ProcessBatch(ctx, batch[:2]); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
}

// A restarted Redis has forgotten the script: EVALSHA answers NOSCRIPT and
// both paths must send the script again.
func TestScriptReloadsAfterFlush(t *testing.T) {
	ctx := context.Background()
	c, client := startCache(t, rediscache.Options{})
	mustApply(t, c, write("a", "unicom", "k", rediscache.OpSet, 100, "a"))
	client.ScriptFlush(ctx)
	mustApply(t, c, write("b", "unicom", "k", rediscache.OpSet, 200, "b"))
	client.ScriptFlush(ctx)
	if err := c.ProcessBatch(ctx, []*dcsync.Request{
		write("c", "unicom", "k", rediscache.OpSet, 300, "c"),
		write("d", "unicom", "j", rediscache.OpSet, 300, "d"),
	}); err != nil {
		t.Fatalf("batch after SCRIPT FLUSH: %v", err)
	}
	if e := entry(t, c, "k"); e.ID != "c" {
		t.Fatalf("k = %+v", e)
	}
}

// version returns a random version, unique to writer w's write i as the
// versions of one origin are.
func version(rng *rand.Rand, w, i int) uint64 {
	return (1+rng.Uint64N(500))<<16 | uint64(w*1000+i)
}

// Many writers racing on one key leave the greatest version: the check and
// the update are one atomic step.
func TestConcurrentAppliesKeepGreatest(t *testing.T) {
	c, _ := startCache(t, rediscache.Options{})
	origins := []string{"unicom", "telecom", "mobile"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var best *dcsync.Request
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 200 {
				req := write(fmt.Sprintf("w%d-%d", w, i), origins[rng.IntN(3)], "hot",
					[]string{rediscache.OpSet, rediscache.OpDelete}[rng.IntN(2)], version(rng, w, i), "v")
				if _, err := c.Apply(context.Background(), req); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if best == nil || req.Newer(best.Version, best.Origin) {
					best = req
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if e := entry(t, c, "hot"); e.Version != best.Version || e.Origin != best.Origin || e.Deleted != (best.Op == rediscache.OpDelete) {
		t.Fatalf("stored %+v, greatest write %+v", e, best)
	}
}
