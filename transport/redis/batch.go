package redis

import (
	"context"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// deferred holds what the collect hop would write to Redis request by
// request — dedupe claims and commits, adds to the apply stream — so that a
// batch costs two round trips instead of three per request: one pipeline of
// claims before dcsync's Collector runs, and, after it, one MULTI with the
// adds, the commits and the acknowledgement of the inbound entries. MULTI
// makes it all or nothing: a write is never marked applied without being in
// the apply stream, nor acknowledged before.
//
// A worker puts it in the context of the Collect call; the Node's Dedupe and
// Handoff find it there. Only writes claimed through this batch's Dedupe are
// deferred, so a Handoff paired with another DedupeStore writes through.
type deferred struct {
	dedupe *Dedupe

	mu      sync.Mutex
	claims  map[string]dcsync.Claim // answers fetched ahead, by request ID
	mine    map[string]bool         // claimed through this batch, not yet released
	adds    [][]any                 // entries for the apply stream
	commits []string                // request IDs to mark applied
}

type deferredKey struct{}

func deferredFrom(ctx context.Context) *deferred {
	b, _ := ctx.Value(deferredKey{}).(*deferred)
	return b
}

// preclaim claims the IDs of reqs in one pipeline and returns a context in
// which d's Claim answers from those results. When the pipeline fails, the
// context answers nothing ahead and each Claim goes to Redis.
func (d *Dedupe) preclaim(ctx context.Context, reqs []*dcsync.Request) (context.Context, *deferred) {
	b := &deferred{dedupe: d, claims: make(map[string]dcsync.Claim, len(reqs)), mine: map[string]bool{}}
	cmds, err := d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, req := range reqs {
			p.SetArgs(ctx, d.opts.Prefix+req.ID, dedupeClaimed,
				goredis.SetArgs{Mode: "NX", TTL: d.opts.ClaimTTL, Get: true})
		}
		return nil
	})
	if err == nil || errors.Is(err, goredis.Nil) {
		for i, c := range cmds {
			if _, seen := b.claims[reqs[i].ID]; seen {
				continue // the first of duplicates in one batch decides
			}
			if claim, err := claimOf(c.(*goredis.StatusCmd).Result()); err == nil {
				b.claims[reqs[i].ID] = claim
			}
		}
	}
	return context.WithValue(ctx, deferredKey{}, b), b
}

// claim answers Claim from the results fetched ahead, if it has one for id.
func (b *deferred) claim(id string) (dcsync.Claim, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.claims[id]
	if !ok {
		return 0, false
	}
	if c == dcsync.Claimed {
		b.mine[id] = true
		b.claims[id] = dcsync.InFlight // a duplicate later in the batch waits
	}
	return c, true
}

// commit defers marking id applied, if this batch claimed it.
func (b *deferred) commit(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mine[id] {
		return false
	}
	b.commits = append(b.commits, id)
	b.claims[id] = dcsync.Applied
	return true
}

func (b *deferred) release(id string) {
	b.mu.Lock()
	delete(b.mine, id)
	b.mu.Unlock()
}

// add defers adding req to the apply stream, if this batch claimed it.
func (b *deferred) add(ctx context.Context, req *dcsync.Request) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mine[req.ID] {
		return false
	}
	b.adds = append(b.adds, entryValues(ctx, req))
	return true
}

// write queues what was deferred, to be executed with the acknowledgements.
func (b *deferred) write(ctx context.Context, p goredis.Pipeliner, apply string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, values := range b.adds {
		p.XAdd(ctx, &goredis.XAddArgs{Stream: apply, Values: values})
	}
	for _, id := range b.commits {
		p.Set(ctx, b.dedupe.opts.Prefix+id, dedupeApplied, b.dedupe.opts.Retention)
	}
}
