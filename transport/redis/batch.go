package redis

import (
	"context"
	"strconv"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// deferred holds what the collect hop would write to Redis request by
// request — dedupe claims and commits, adds to the apply stream — so that a
// batch costs two round trips and a few commands instead of three commands
// per request: one MGET of the batch's dedupe keys before dcsync's
// Collector runs, and, after it, one MULTI with a script that marks the
// accepted writes applied and adds them to the apply stream as one entry,
// and the acknowledgement of the inbound entries. MULTI makes it all or
// nothing: a write is never marked applied without being in the apply
// stream, nor acknowledged before.
//
// No claim is written: claiming and handing off are one step, in the
// script, which marks each write applied with SET NX and adds only those it
// marked. Of collectors racing with the same write, whichever script runs
// first hands it off, and the others drop it; a write claimed meanwhile by
// a collector that does not defer (one sharing the Dedupe outside a Node)
// is dropped too, and that collector hands it off or fails it to its
// sender, which retries.
//
// A worker puts it in the context of the Collect call; the Node's Dedupe and
// Handoff find it there. Only writes claimed through this batch's Dedupe are
// deferred, so a Handoff paired with another DedupeStore writes through.
type deferred struct {
	dedupe *Dedupe
	max    int // requests per apply entry

	mu      sync.Mutex
	claims  map[string]dcsync.Claim // answers fetched ahead, by request ID
	mine    map[string]bool         // claimed through this batch, not yet released
	adds    []pendingAdd            // writes for the apply stream
	added   map[string]bool         // request IDs in adds
	commits []string                // request IDs to mark applied
}

type pendingAdd struct{ id, raw string }

type deferredKey struct{}

func deferredFrom(ctx context.Context) *deferred {
	b, _ := ctx.Value(deferredKey{}).(*deferred)
	return b
}

// prefetch reads what the store knows of the IDs of reqs in one MGET and
// returns a context in which d's Claim answers from it, and the Handoff and
// Commit defer their writes: an ID marked applied is Applied, one claimed
// by a collector outside a Node is InFlight, an unknown one is Claimed. The
// claim takes effect only when the batch is written. When the MGET fails,
// the context answers nothing ahead and each Claim goes to Redis.
func (d *Dedupe) prefetch(ctx context.Context, reqs []*dcsync.Request, max int) (context.Context, *deferred) {
	b := &deferred{dedupe: d, max: max, claims: make(map[string]dcsync.Claim, len(reqs)),
		mine: map[string]bool{}, added: map[string]bool{}}
	keys := make([]string, len(reqs))
	for i, req := range reqs {
		keys[i] = d.opts.Prefix + req.ID
	}
	if vals, err := d.client.MGet(ctx, keys...).Result(); err == nil {
		for i, v := range vals {
			c := dcsync.Claimed
			switch v {
			case nil:
			case dedupeApplied:
				c = dcsync.Applied
			default:
				c = dcsync.InFlight
			}
			if _, seen := b.claims[reqs[i].ID]; !seen {
				b.claims[reqs[i].ID] = c
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
	if !b.added[id] {
		b.commits = append(b.commits, id)
	}
	b.claims[id] = dcsync.Applied
	return true
}

// release gives up a claim of this batch, and reports whether it was one:
// nothing of it is in Redis yet.
func (b *deferred) release(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mine[id] {
		return false
	}
	delete(b.mine, id)
	delete(b.claims, id)
	return true
}

// add defers adding req to the apply stream, if this batch claimed it.
func (b *deferred) add(ctx context.Context, req *dcsync.Request) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mine[req.ID] {
		return false
	}
	if !b.added[req.ID] {
		b.added[req.ID] = true
		b.adds = append(b.adds, pendingAdd{id: req.ID, raw: encodingOf(ctx, req)})
	}
	return true
}

// empty reports whether there is nothing to write.
func (b *deferred) empty() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.adds) == 0 && len(b.commits) == 0
}

// handoffScript marks the writes whose dedupe keys follow the apply stream
// in KEYS applied, for ARGV[1] milliseconds, unless their key exists, and
// adds those it marked to the apply stream as one entry. ARGV[i] is the
// frame of the write of KEYS[i]. It returns how many it added.
var handoffScript = goredis.NewScript(`
local frames = {}
for i = 2, #KEYS do
  if redis.call('set', KEYS[i], 'a', 'NX', 'PX', ARGV[1]) then
    frames[#frames + 1] = ARGV[i]
  end
end
if #frames > 0 then
  redis.call('xadd', KEYS[1], '*', 'n', #frames, 'b', table.concat(frames))
end
return #frames`)

// write queues what was deferred, to be executed with the acknowledgements
// in one MULTI, and then forgets it. The script goes by EVAL, not EVALSHA:
// in a MULTI, a script missing from the cache (the server restarted) would
// fail alone, and the acknowledgements would go through without it.
func (b *deferred) write(ctx context.Context, p goredis.Pipeliner, apply string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ttl := strconv.FormatInt(b.dedupe.opts.Retention.Milliseconds(), 10)
	for start := 0; start < len(b.adds); start += b.max {
		chunk := b.adds[start:min(start+b.max, len(b.adds))]
		keys := make([]string, 1, len(chunk)+1)
		args := make([]any, 1, len(chunk)+1)
		keys[0], args[0] = apply, ttl
		for _, a := range chunk {
			keys = append(keys, b.dedupe.opts.Prefix+a.id)
			args = append(args, appendFrame(nil, a.raw))
		}
		handoffScript.Eval(ctx, p, keys, args...)
	}
	for _, id := range b.commits {
		p.Set(ctx, b.dedupe.opts.Prefix+id, dedupeApplied, b.dedupe.opts.Retention)
	}
	b.adds, b.commits = nil, nil
}
