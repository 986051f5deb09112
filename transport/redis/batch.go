package redis

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// deferred holds what the collect hop would write to Redis request by
// request — dedupe claims and commits, adds to the apply stream — so that a
// batch costs two round trips and a few commands whatever its size: one
// pipeline of HMGETs of the batch's IDs before the collect hop runs; after
// it, one pipeline of scripts, each adding up to maxScriptBatch accepted
// writes to the apply stream, in entries of up to BatchSize, and marking
// them applied. The acknowledgement of the inbound entries goes with the
// worker's next read.
// A write is never marked applied without being in the apply stream (the
// script adds first, and Redis refuses a script's first write, not a later
// one, when out of memory), nor acknowledged before: the acknowledgement
// waits for the scripts' success. A crash in between leaves the entries
// pending; their next delivery finds the writes applied and drops them as
// duplicates.
//
// No claim is written: claiming and handing off are one step, in the
// script, which adds and marks applied only the writes it finds neither
// applied nor claimed. Of collectors racing with the same write, whichever
// script runs first hands it off, and the others drop it; a write claimed
// meanwhile by a collector that does not defer (one sharing the Dedupe
// outside a Node) is dropped too, and that collector hands it off, or fails
// it to its sender, which retries.
//
// A collect worker makes one per batch (prefetch) when the Syncer claims in
// the Node's Dedupe, and passes it to the collect hop (package hop) as the
// batch's claims — a dcsync.DedupeStore over the Dedupe — and to the next
// hop that hands writes to the apply stream (Node.next). Only writes
// claimed through it are deferred; another claim, commit or release goes
// to the Dedupe, and a write claimed so is added to the apply stream at
// once.
type deferred struct {
	dedupe *Dedupe
	max    int                        // requests per apply entry
	raw    map[*dcsync.Request]string // the encodings the requests came in

	gens  []string  // the generations as the batch read them
	marks [2]string // their dedupeMarks then, of the previous and current

	mu      sync.Mutex
	slots   map[string]*slot // by request ID: what was fetched ahead and done since
	adds    []pendingAdd     // writes for the apply stream
	commits []string         // request IDs to mark applied
}

// slot is what a batch knows of one request ID.
type slot struct {
	claim dcsync.Claim // what Claim answers
	mine  bool         // claimed through this batch, not released
	added bool         // in adds
}

type pendingAdd struct{ id, raw string }

var _ dcsync.DedupeStore = (*deferred)(nil)

// prefetch reads what the store knows of the IDs of reqs, which came in the
// encodings raw holds, in one pipeline, and returns the batch, whose Claim
// answers from it, and whose Commit and add defer their writes: an ID
// marked applied is Applied, one claimed by a collector outside a Node is
// InFlight, another is Claimed. The claim takes effect only when the batch
// is written. When the reads fail, the batch answers nothing ahead and
// each Claim goes to Redis.
func (d *Dedupe) prefetch(ctx context.Context, reqs []*dcsync.Request, raw map[*dcsync.Request]string, max int) *deferred {
	b := &deferred{dedupe: d, max: max, raw: raw, gens: d.generations()}
	ids := make([]any, len(reqs)) // boxed once for both lookups
	for i, req := range reqs {
		ids[i] = req.ID
	}
	cmds := make([]*goredis.SliceCmd, 2)
	marks := make([]*goredis.StringCmd, 2)
	_, err := d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		// Not the next generation: only a process whose clock runs ahead
		// writes there before it begins, and the handoff script, which
		// decides, looks there too. The counts of marks come first: what is
		// marked after them, the lookups may miss.
		gens := b.gens[:2]
		for g, key := range gens {
			marks[g] = p.HGet(ctx, key, dedupeMarks)
		}
		for g, key := range gens {
			cmds[g] = goredis.NewSliceCmd(ctx, append([]any{"hmget", key}, ids...)...)
			_ = p.Process(ctx, cmds[g])
		}
		return nil
	})
	if errors.Is(err, goredis.Nil) { // a count not there yet
		err = nil
		for _, c := range cmds {
			err = cmp.Or(err, c.Err())
		}
	}
	if err == nil {
		for g, m := range marks {
			b.marks[g] = m.Val()
		}
		now := time.Now().UnixMilli()
		b.slots = make(map[string]*slot, len(reqs))
		slots := make([]slot, len(reqs))
		for i, req := range reqs {
			if _, seen := b.slots[req.ID]; seen {
				continue
			}
			c := dcsync.Claimed
			for _, cmd := range cmds {
				v, _ := cmd.Val()[i].(string)
				switch {
				case v == dedupeApplied:
					c = dcsync.Applied
				case c == dcsync.Claimed && claimedUntil(v) > now:
					c = dcsync.InFlight
				}
			}
			slots[i].claim = c
			b.slots[req.ID] = &slots[i]
		}
	}
	return b
}

// Claim implements dcsync.DedupeStore: from what the batch read, or from
// the Dedupe for an ID it did not.
func (b *deferred) Claim(ctx context.Context, id string) (dcsync.Claim, error) {
	if c, ok := b.claim(id); ok {
		return c, nil
	}
	return b.dedupe.Claim(ctx, id)
}

// Commit implements dcsync.DedupeStore: deferred to the batch's writing
// for a claim of the batch, else in the Dedupe.
func (b *deferred) Commit(ctx context.Context, id string) error {
	if b.commit(id) {
		return nil
	}
	return b.dedupe.Commit(ctx, id)
}

// Release implements dcsync.DedupeStore: nothing to write for a claim of
// the batch, which was never written, else in the Dedupe.
func (b *deferred) Release(ctx context.Context, id string) error {
	if b.release(id) {
		return nil
	}
	return b.dedupe.Release(ctx, id)
}

// claimedUntil returns the deadline of a claim's field value, 0 when it is
// none.
func claimedUntil(v string) int64 {
	if len(v) < 2 || v[:1] != dedupeClaimed {
		return 0
	}
	ms, _ := strconv.ParseInt(v[1:], 10, 64)
	return ms
}

// claim answers Claim from the results fetched ahead, if it has one for id.
func (b *deferred) claim(id string) (dcsync.Claim, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.slots[id]
	if s == nil {
		return 0, false
	}
	c := s.claim
	if c == dcsync.Claimed {
		s.mine = true
		s.claim = dcsync.InFlight // a duplicate later in the batch waits
	}
	return c, true
}

// mine returns the slot of id if this batch claimed it, else nil.
func (b *deferred) mine(id string) *slot {
	if s := b.slots[id]; s != nil && s.mine {
		return s
	}
	return nil
}

// commit defers marking id applied, if this batch claimed it.
func (b *deferred) commit(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.mine(id)
	if s == nil {
		return false
	}
	if !s.added {
		b.commits = append(b.commits, id)
	}
	s.claim = dcsync.Applied
	return true
}

// release gives up a claim of this batch, and reports whether it was one:
// nothing of it is in Redis yet.
func (b *deferred) release(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mine(id) == nil {
		return false
	}
	delete(b.slots, id) // a later Claim asks Redis
	return true
}

// add defers adding req to the apply stream, if this batch claimed it.
func (b *deferred) add(req *dcsync.Request) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.mine(req.ID)
	if s == nil {
		return false
	}
	if !s.added {
		s.added = true
		b.adds = append(b.adds, pendingAdd{id: req.ID, raw: encodingOf(b.raw, req)})
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

// handoffScript hands off the writes of a batch, in entries of the apply
// stream KEYS[1]: it marks applied, in the current generation of the
// dedupe store, KEYS[3], the writes that it finds neither applied nor
// claimed in the generations KEYS[2..4], and adds them. ARGV[1] is the
// generations' TTL in seconds; ARGV[2] and ARGV[3] the counts of marks
// (dedupeMarks) of the previous and current generations as the batch read
// them, or a value that no count takes; ARGV[4] the number of entries, m,
// and ARGV[5], ARGV[6], ... the count and frames of each entry, 2m values;
// then the IDs of the writes (distinct, found free when the batch read the
// store), entry after entry. A generation that does not exist (the next,
// mostly) is not looked up, nor one whose count is as the batch read it:
// nobody marked it since, and what the batch read still holds. When no
// write is found, as is usual, the frames go into the entries as they
// came, and Lua looks at nothing one by one but the lookups' answers. It
// returns how many writes it added.
var handoffScript = goredis.NewScript(dedupeLookup + `
local m = tonumber(ARGV[4])
local base = 4 + 2 * m
local n = #ARGV - base
local ids = {}
for i = 1, n do ids[i] = ARGV[base + i] end
local found, fresh = {}, true
for g = 2, 4 do
  if redis.call('exists', KEYS[g]) == 1 and
      (g == 4 or redis.call('hget', KEYS[g], '` + dedupeMarks + `') ~= ARGV[g]) then
    local vals = redis.call('hmget', KEYS[g], unpack(ids))
    found[#found + 1] = vals
    if fresh then
      for i = 1, n do
        if vals[i] then fresh = false break end
      end
    end
  end
end
-- pick returns the frames of blob at the positions in keep, in order;
-- a frame is a uvarint length and as many bytes.
local function pick(blob, keep)
  local parts, at, i, k = {}, 1, 0, 1
  while at <= #blob and k <= #keep do
    local len, scale, p = 0, 1, at
    repeat
      local c = string.byte(blob, p)
      len, scale, p = len + (c % 128) * scale, scale * 128, p + 1
    until c < 128
    i = i + 1
    if keep[k] == i then
      parts[#parts + 1] = string.sub(blob, at, p + len - 1)
      k = k + 1
    end
    at = p + len
  end
  return table.concat(parts)
end
local fields, added, at = {}, 0, 0
for e = 1, m do
  local count, blob = tonumber(ARGV[3 + 2 * e]), ARGV[4 + 2 * e]
  local keep = {}
  for j = 1, count do
    local s = false
    if not fresh then
      for f = 1, #found do s = merge(s, state(found[f][at + j])) end
    end
    if not s then
      fields[#fields + 1] = ids[at + j]
      fields[#fields + 1] = 'a'
      keep[#keep + 1] = j
    end
  end
  if #keep > 0 then
    if #keep < count then blob = pick(blob, keep) end
    redis.call('xadd', KEYS[1], '*', 'n', #keep, 'b', blob)
    added = added + #keep
  end
  at = at + count
end
if added == 0 then return 0 end
redis.call('hset', KEYS[3], unpack(fields))
redis.call('hincrby', KEYS[3], '` + dedupeMarks + `', 1)
redis.call('expire', KEYS[3], ARGV[1], 'NX')
return added`)

// maxScriptBatch bounds the writes of one handoff script, which unpacks
// them onto Lua's stack, and so how long it holds the server.
const maxScriptBatch = 1024

// notMarks is a count of marks that the handoff script never finds, for a
// script that must look every generation up.
const notMarks = "-"

// flush writes what was deferred, in entries of up to max writes and
// scripts of up to maxScriptBatch, every script in one round trip, and
// then forgets it. It returns the first error; of the scripts, those that
// went through stay written.
func (b *deferred) flush(ctx context.Context, client goredis.UniversalClient, apply string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// The generations the batch read, even if another began meanwhile:
	// the counts of marks are theirs.
	gens := b.gens
	ttl := b.dedupe.genTTL()
	keys := append([]string{apply}, gens...)
	entrySize := min(b.max, maxScriptBatch)
	scriptSize := maxScriptBatch / entrySize * entrySize // whole entries
	var scripts [][]any
	var blobs [][]byte
	defer func() {
		for _, blob := range blobs {
			putBlob(blob)
		}
	}()
	for start := 0; start < len(b.adds); start += scriptSize {
		adds := b.adds[start:min(start+scriptSize, len(b.adds))]
		// Only the first script may trust the count of the current
		// generation that the batch read: it moves it.
		cur := b.marks[1]
		if len(scripts) > 0 {
			cur = notMarks
		}
		args := []any{ttl, b.marks[0], cur, (len(adds) + entrySize - 1) / entrySize}
		for e := 0; e < len(adds); e += entrySize {
			entry := adds[e:min(e+entrySize, len(adds))]
			n := 0
			for _, a := range entry {
				n += binary.MaxVarintLen32 + len(a.raw)
			}
			blob := getBlob(n)
			for _, a := range entry {
				blob = appendFrame(blob, a.raw)
			}
			args = append(args, len(entry), blob)
			blobs = append(blobs, blob)
		}
		for _, a := range adds {
			args = append(args, a.id)
		}
		scripts = append(scripts, args)
	}
	cmds := make([]*goredis.Cmd, len(scripts))
	if len(scripts) > 0 {
		_, _ = client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, args := range scripts {
				cmds[i] = handoffScript.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
	}
	for i, cmd := range cmds {
		err := cmd.Err()
		if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			err = handoffScript.Run(ctx, client, keys, scripts[i]...).Err() // loads it
		}
		if err != nil {
			return fmt.Errorf("redis: hand writes off to %s: %w", apply, err)
		}
	}
	for _, id := range b.commits {
		if err := commitScript.Run(ctx, client, gens, id, ttl).Err(); err != nil {
			return fmt.Errorf("redis: dedupe commit: %w", err)
		}
	}
	b.adds, b.commits = nil, nil
	return nil
}
