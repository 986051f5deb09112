package redis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// DedupeOptions configures a Dedupe. The zero value of each field selects its
// default.
type DedupeOptions struct {
	// Prefix starts every key; a generation number follows. Default
	// "{dcsync}:dedupe:". The keys must share a Redis Cluster hash slot: a
	// Prefix without a hash tag ("{...}") is put in braces whole.
	Prefix string
	// ClaimTTL is how long a claim lasts when its worker neither commits nor
	// releases it (it died); default 10s. Keep it shorter than the time after
	// which a dead worker's entries are claimed by another (NodeConfig.ClaimIdle),
	// so that the other finds the claim expired.
	ClaimTTL time.Duration
	// Retention is how long an applied ID is remembered at least; default 1
	// hour. IDs are kept in generations of Retention each, and a generation
	// is dropped as a whole, so an ID is remembered for up to three times
	// that.
	Retention time.Duration
}

// Values of a field of a generation: applied, or claimed until the Redis
// server's clock reads the milliseconds that follow the "c".
const (
	dedupeClaimed = "c"
	dedupeApplied = "a"
)

// dedupeMarks is the field of a generation that counts the scripts that
// marked IDs in it, claimed or applied; no request ID can be spelt so. A
// batch that reads the count before its lookups knows, when the count has
// not moved by the time it writes, that what it read still holds.
const dedupeMarks = "#marks"

// Dedupe is a dcsync.DedupeStore in Redis, shared by every collector of a
// datacenter. It keeps request IDs in hashes, one per generation of
// Retention: a field per ID, holding "a" once applied, or "c" and a
// deadline while a worker applies it, the claim counting as expired after
// ClaimTTL. Lookups read the current generation and its neighbours, so
// processes whose clocks differ a little agree. A hash field costs Redis
// much less than a key with its own expiry, and a Node's collect hop marks
// a whole batch applied in one script, through a view of the store that
// answers the batch's claims from one read (see deferred). Create it with
// NewDedupe.
type Dedupe struct {
	client goredis.UniversalClient
	opts   DedupeOptions
}

var _ dcsync.DedupeStore = (*Dedupe)(nil)

// NewDedupe returns a Dedupe keeping its keys in client's server.
func NewDedupe(client goredis.UniversalClient, opts DedupeOptions) *Dedupe {
	opts.Prefix = or(opts.Prefix, "{dcsync}:dedupe:")
	if open := strings.IndexByte(opts.Prefix, '{'); open < 0 || !strings.Contains(opts.Prefix[open+1:], "}") ||
		strings.HasPrefix(opts.Prefix[open+1:], "}") {
		opts.Prefix = "{" + opts.Prefix + "}" // Redis hashes all of it: no tag
	}
	opts.ClaimTTL = or(opts.ClaimTTL, 10*time.Second)
	opts.Retention = or(opts.Retention, time.Hour)
	return &Dedupe{client: client, opts: opts}
}

// generations returns the keys of the previous, current and next
// generations, by this process's clock.
func (d *Dedupe) generations() []string {
	g := time.Now().UnixMilli() / max(d.opts.Retention.Milliseconds(), 1)
	return []string{d.opts.Prefix + strconv.FormatInt(g-1, 10), d.opts.Prefix + strconv.FormatInt(g, 10),
		d.opts.Prefix + strconv.FormatInt(g+1, 10)}
}

// genTTL is how long a generation's hash lives, in seconds, from its first
// field: past the time lookups read it.
func (d *Dedupe) genTTL() string {
	return strconv.FormatInt(int64(math.Ceil((3 * d.opts.Retention).Seconds())), 10)
}

// dedupeLookup is the Lua that the scripts share: state(id) says whether id
// is applied ("a"), claimed by someone ("c"), or free (false), from the
// generations in KEYS[g1..g1+2], at the server's clock.
const dedupeLookup = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function state(v)
  if v == 'a' then return 'a' end
  if v then
    local until_ = tonumber(string.sub(v, 2))
    if until_ and until_ > now then return 'c' end
  end
  return false
end
local function merge(a, b)
  if a == 'a' or b == 'a' then return 'a' end
  return a or b
end
`

// claimScript claims ARGV[1] in the current generation, KEYS[2], for
// ARGV[2] milliseconds unless it is applied or claimed, and returns 0
// (claimed), 1 (applied) or 2 (in flight).
var claimScript = goredis.NewScript(dedupeLookup + `
local s = false
for g = 1, 3 do s = merge(s, state(redis.call('hget', KEYS[g], ARGV[1]))) end
if s == 'a' then return 1 end
if s == 'c' then return 2 end
redis.call('hset', KEYS[2], ARGV[1], 'c' .. (now + tonumber(ARGV[2])))
redis.call('hincrby', KEYS[2], '` + dedupeMarks + `', 1)
redis.call('expire', KEYS[2], ARGV[3], 'NX')
return 0`)

// commitScript marks ARGV[1] applied in the current generation, KEYS[2],
// and drops its claims in the others.
var commitScript = goredis.NewScript(`
for g = 1, 3, 2 do
  local v = redis.call('hget', KEYS[g], ARGV[1])
  if v and v ~= 'a' then redis.call('hdel', KEYS[g], ARGV[1]) end
end
redis.call('hset', KEYS[2], ARGV[1], 'a')
redis.call('hincrby', KEYS[2], '` + dedupeMarks + `', 1)
redis.call('expire', KEYS[2], ARGV[2], 'NX')
return 1`)

// releaseClaimScript drops the claims of ARGV[1], but not an applied mark:
// a worker whose claim expired and was committed by another must not
// erase that.
var releaseClaimScript = goredis.NewScript(`
for g = 1, 3 do
  local v = redis.call('hget', KEYS[g], ARGV[1])
  if v and v ~= 'a' then redis.call('hdel', KEYS[g], ARGV[1]) end
end
return 1`)

// Claim implements dcsync.DedupeStore with one script.
func (d *Dedupe) Claim(ctx context.Context, id string) (dcsync.Claim, error) {
	n, err := claimScript.Run(ctx, d.client, d.generations(), id, d.opts.ClaimTTL.Milliseconds(), d.genTTL()).Int()
	if err != nil {
		return 0, fmt.Errorf("redis: dedupe claim: %w", err)
	}
	switch n {
	case 1:
		return dcsync.Applied, nil
	case 2:
		return dcsync.InFlight, nil
	}
	return dcsync.Claimed, nil
}

// Commit implements dcsync.DedupeStore.
func (d *Dedupe) Commit(ctx context.Context, id string) error {
	if err := commitScript.Run(ctx, d.client, d.generations(), id, d.genTTL()).Err(); err != nil {
		return fmt.Errorf("redis: dedupe commit: %w", err)
	}
	return nil
}

// Release implements dcsync.DedupeStore.
func (d *Dedupe) Release(ctx context.Context, id string) error {
	if err := releaseClaimScript.Run(ctx, d.client, d.generations(), id).Err(); err != nil {
		return fmt.Errorf("redis: dedupe release: %w", err)
	}
	return nil
}

// forget drops what the store knows of ids, applied or claimed, so that a
// later delivery of the writes is applied. Nodes call it for writes
// dead-lettered after the collector committed them.
func (d *Dedupe) forget(ctx context.Context, ids ...string) error {
	_, err := d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, key := range d.generations() {
			p.HDel(ctx, key, ids...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: dedupe forget: %w", err)
	}
	return nil
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Len returns how many IDs the Dedupe remembers, applied or claimed, in
// the generations its lookups read: for a gauge (metrics/prom's
// Options.DedupeLen). It asks Redis, a command per generation.
func (d *Dedupe) Len(ctx context.Context) (int, error) {
	gens := d.generations()
	lens := make([]*goredis.IntCmd, len(gens))
	marks := make([]*goredis.BoolCmd, len(gens))
	_, err := d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, g := range gens {
			lens[i], marks[i] = p.HLen(ctx, g), p.HExists(ctx, g, dedupeMarks)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redis: dedupe size: %w", err)
	}
	n := 0
	for i := range gens {
		n += int(lens[i].Val())
		if marks[i].Val() {
			n--
		}
	}
	return n, nil
}
