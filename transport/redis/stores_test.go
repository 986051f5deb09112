package redis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/hop"
	"github.com/dcsync/dcsync/internal/testserver"
)

func TestDedupe(t *testing.T) {
	ctx := context.Background()
	d := NewDedupe(newClient(t, testserver.StartRedis(t).Addr()), DedupeOptions{ClaimTTL: 300 * time.Millisecond})
	claim := func(id string, want dcsync.Claim) {
		t.Helper()
		got, err := d.Claim(ctx, id)
		if err != nil || got != want {
			t.Fatalf("Claim(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	claim("a", dcsync.Claimed)
	claim("a", dcsync.InFlight)
	if err := d.Commit(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	claim("a", dcsync.Applied)
	if err := d.Release(ctx, "a"); err != nil { // must not erase the applied mark
		t.Fatal(err)
	}
	claim("a", dcsync.Applied)

	claim("b", dcsync.Claimed)
	if err := d.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	claim("b", dcsync.Claimed) // released: claimable again

	// A claim neither committed nor released expires.
	claim("c", dcsync.Claimed)
	eventually(t, 10*time.Second, func() bool {
		c, err := d.Claim(ctx, "c")
		return err == nil && c == dcsync.Claimed
	}, func() string { return "claim of c never expired" })

	// Of many concurrent claims of one ID, exactly one wins.
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if c, err := d.Claim(ctx, "d"); err == nil && c == dcsync.Claimed {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d concurrent claims won, want 1", won.Load())
	}
}

func TestDedupeBatchDefersToAcknowledgement(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, testserver.StartRedis(t).Addr())
	d := NewDedupe(client, DedupeOptions{})
	if err := d.Commit(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	reqs := []*dcsync.Request{{ID: "new"}, {ID: "old"}, {ID: "new"}}
	b := d.prefetch(ctx, reqs, nil, 256)
	for i, want := range []dcsync.Claim{dcsync.Claimed, dcsync.Applied, dcsync.InFlight} {
		if got, err := b.Claim(ctx, reqs[i].ID); err != nil || got != want {
			t.Errorf("claim %d of the batch = %v, %v; want %v", i, got, err, want)
		}
	}
	if err := hop.Err((&Node{}).next(nil, b)(ctx, reqs[:1])); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	// Deferred: nothing in Redis until the batch is written.
	for _, gen := range d.generations() {
		if client.HExists(ctx, gen, "new").Val() {
			t.Fatalf("before the batch is written, %s holds the ID", gen)
		}
	}
	if c, _ := b.Claim(ctx, "new"); c != dcsync.Applied {
		t.Errorf("within the batch, a committed ID claims %v, want Applied", c)
	}
	// Another collector's batch with the same write, written first, wins:
	// the write is handed off once.
	rb := d.prefetch(ctx, reqs[:1], nil, 256)
	if c, _ := rb.Claim(ctx, "new"); c != dcsync.Claimed {
		t.Fatalf("rival claims %v, want Claimed", c)
	}
	if err := hop.Err((&Node{}).next(nil, rb)(ctx, reqs[:1])); err != nil {
		t.Fatal(err)
	}
	for _, batch := range []*deferred{rb, b} {
		if err := batch.flush(ctx, client, "apply"); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := d.Claim(ctx, "new"); c != dcsync.Applied {
		t.Errorf("after the batch is written, claim = %v, want Applied", c)
	}
	entries, err := client.XRange(ctx, "apply", "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("apply stream holds %d entries, %v; want 1", len(entries), err)
	}
	frames, err := decodeFrames(entries[0].Values)
	if err != nil || len(frames) != 1 || frames[0].req.ID != "new" {
		t.Errorf("apply entry %v: %+v, %v", entries[0].Values, frames, err)
	}

	// A write of a batch applied by another collector after the batch
	// read the store is left out of the batch's entry; the rest go in.
	// handOff reads the store for reqs, claims and hands off each, to go
	// in entries of up to max.
	handOff := func(reqs []*dcsync.Request, max int) *deferred {
		t.Helper()
		b := d.prefetch(ctx, reqs, nil, max)
		for _, req := range reqs {
			if c, _ := b.Claim(ctx, req.ID); c != dcsync.Claimed {
				t.Fatalf("claim of %s = %v", req.ID, c)
			}
		}
		if err := hop.Err((&Node{}).next(nil, b)(ctx, reqs)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// written writes b and returns the IDs in each entry it added to the
	// apply stream, which must then hold want entries.
	written := func(b *deferred, want int) [][]string {
		t.Helper()
		before, _ := client.XLen(ctx, "apply").Result()
		if err := b.flush(ctx, client, "apply"); err != nil {
			t.Fatal(err)
		}
		entries, _ := client.XRange(ctx, "apply", "-", "+").Result()
		if len(entries) != want {
			t.Fatalf("apply stream holds %d entries, want %d", len(entries), want)
		}
		var ids [][]string
		for _, e := range entries[before:] {
			frames, err := decodeFrames(e.Values)
			if err != nil {
				t.Fatal(err)
			}
			var in []string
			for _, f := range frames {
				in = append(in, f.req.ID+"="+string(f.req.Payload))
			}
			ids = append(ids, in)
		}
		return ids
	}
	tb := handOff([]*dcsync.Request{{ID: "x", Payload: []byte("1")}, {ID: "y", Payload: []byte("22")}, {ID: "z", Payload: []byte("333")}}, 256)
	if err := d.Commit(ctx, "y"); err != nil { // another collector's
		t.Fatal(err)
	}
	if got := fmt.Sprint(written(tb, 2)); got != "[[x=1 z=333]]" {
		t.Errorf("apply entry %s; want x and z", got)
	}
	for _, id := range []string{"x", "z"} {
		if c, _ := d.Claim(ctx, id); c != dcsync.Applied {
			t.Errorf("%s claims %v after the batch, want Applied", id, c)
		}
	}

	// So is one applied meanwhile in the previous generation, by a process
	// whose clock is behind: its mark moves that generation's count.
	pb := handOff([]*dcsync.Request{{ID: "p"}, {ID: "q"}}, 256)
	behind := append([]string{"behind"}, d.generations()[:2]...) // its current is our previous
	if err := commitScript.Run(ctx, client, behind, "p", d.genTTL()).Err(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(written(pb, 3)); got != "[[q=]]" {
		t.Errorf("apply entry %s; want q alone", got)
	}

	// A batch larger than an entry goes in several, in one script while
	// they fit in maxScriptBatch, in more after that; a write applied
	// meanwhile is left out of its entry.
	var many []*dcsync.Request
	for i := range maxScriptBatch + 3 {
		many = append(many, &dcsync.Request{ID: fmt.Sprintf("m%d", i), Payload: []byte{'a' + byte(i%26)}})
	}
	mb := handOff(many, maxScriptBatch/2)
	for _, id := range []string{"m1", fmt.Sprint("m", maxScriptBatch+1)} {
		if err := d.Commit(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	got := written(mb, 6)
	if len(got) != 3 || len(got[0]) != maxScriptBatch/2-1 || len(got[1]) != maxScriptBatch/2 || len(got[2]) != 2 ||
		got[0][1] != "m2=c" || got[2][0] != fmt.Sprint("m", maxScriptBatch, "=", string(rune('a'+maxScriptBatch%26))) {
		t.Errorf("apply entries of %d, %d and %d writes (%v, %v), want %d, %d and 2",
			len(got[0]), len(got[1]), len(got[2]), got[0][:2], got[2], maxScriptBatch/2-1, maxScriptBatch/2)
	}
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, testserver.StartRedis(t).Addr())
	l := NewLock(client, "lock")
	acquire := func(token string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := l.Acquire(ctx, token, ttl)
		if err != nil || got != want {
			t.Fatalf("Acquire(%s) = %v, %v; want %v", token, got, err, want)
		}
	}
	acquire("a", time.Minute, true)
	acquire("b", time.Minute, false)
	acquire("a", 2*time.Minute, true) // renews
	if ttl := client.PTTL(ctx, "lock").Val(); ttl <= time.Minute {
		t.Errorf("renewed lock has TTL %v, want over a minute", ttl)
	}
	if err := l.Release(ctx, "b"); err != nil { // not the holder: no effect
		t.Fatal(err)
	}
	acquire("b", time.Minute, false)
	if err := l.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	acquire("b", 200*time.Millisecond, true)

	// An expired lock goes to the next contender, and its former holder can
	// neither renew nor release it.
	eventually(t, 10*time.Second, func() bool {
		ok, err := l.Acquire(ctx, "c", time.Minute)
		return err == nil && ok
	}, func() string { return "lock of b never expired" })
	acquire("b", time.Minute, false)
	if err := l.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	acquire("c", time.Minute, true)

	// Of contenders racing for a free lock, exactly one wins.
	if err := l.Release(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if ok, err := l.Acquire(ctx, string(rune('A'+i)), time.Minute); err == nil && ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d contenders won, want 1", won.Load())
	}
}

func TestLockElectsOneReconciler(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, testserver.StartRedis(t).Addr())
	node, err := NewNode(NodeConfig{DC: "unicom", Client: client})
	if err != nil {
		t.Fatal(err)
	}
	log := memaudit.New(0)
	leaders := 0
	for range 2 {
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom", Audit: log,
			Lock: node.Lock(), Checkpoints: node.Checkpoints()})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d reconcilers led, want 1", leaders)
	}
}

func TestCheckpoints(t *testing.T) {
	ctx := context.Background()
	c := NewCheckpoints(newClient(t, testserver.StartRedis(t).Addr()), "")
	if got, err := c.Load(ctx, "unicom"); err != nil || !got.IsZero() {
		t.Fatalf("Load before Save = %v, %v; want the zero time", got, err)
	}
	at := time.Date(2026, 5, 1, 12, 30, 0, 123456789, time.FixedZone("CST", 8*3600))
	if err := c.Save(ctx, "unicom", at); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Load(ctx, "unicom"); err != nil || !got.Equal(at) {
		t.Fatalf("Load = %v, %v; want %v", got, err, at)
	}
	if got, _ := c.Load(ctx, "telecom"); !got.IsZero() {
		t.Errorf("another datacenter's checkpoint = %v, want zero", got)
	}
}

func TestDedupeLen(t *testing.T) {
	ctx := context.Background()
	d := NewDedupe(newClient(t, testserver.StartRedis(t).Addr()), DedupeOptions{})
	for i := range 5 {
		id := fmt.Sprint("len-", i)
		if _, err := d.Claim(ctx, id); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if err := d.Commit(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := d.Len(ctx); err != nil || n != 5 {
		t.Fatalf("Len = %d, %v; want 5 (3 applied, 2 claimed)", n, err)
	}
}
