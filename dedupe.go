package dcsync

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Claim is the answer of a DedupeStore to a write about to be applied.
type Claim int

const (
	// Claimed: the caller is now the one applying the write.
	Claimed Claim = iota
	// Applied: the write was applied before; acknowledge it, do not apply.
	Applied
	// InFlight: another worker is applying it right now; retry later.
	InFlight
)

// DedupeStore remembers which writes a datacenter has applied, so a write
// delivered twice is applied once. All collectors of a datacenter share one
// store; the Redis implementation is in transport/redis.
type DedupeStore interface {
	// Claim marks id as being applied, unless it is applied or in flight.
	// A claim that is neither committed nor released expires, so a worker
	// that dies mid-apply does not block the write forever.
	Claim(ctx context.Context, id string) (Claim, error)
	// Commit marks a claimed id as applied.
	Commit(ctx context.Context, id string) error
	// Release gives up a claim after a failed apply, so a retry may claim it.
	Release(ctx context.Context, id string) error
}

// BatchDedupeStore is a DedupeStore that also claims and commits many IDs
// in one call, as the Collector does with every batch it applies, so that
// a store pays for its locks or round trips once a batch rather than once
// a write. MemoryDedupe implements it.
type BatchDedupeStore interface {
	DedupeStore
	// ClaimBatch claims every ID of ids, as Claim would one after the
	// other, and sets claims[i] to the answer for ids[i]; claims is as
	// long as ids. An error means none of them was claimed.
	ClaimBatch(ctx context.Context, ids []string, claims []Claim) error
	// CommitBatch commits every claimed ID of ids, as Commit would.
	CommitBatch(ctx context.Context, ids []string) error
}

var _ BatchDedupeStore = (*MemoryDedupe)(nil)

// MemoryDedupe is an in-process DedupeStore, the default of a Syncer. It
// remembers applied IDs in shards, each under a lock of its own, picked by
// the ID's hash, so collectors rarely wait for each other; each shard keeps
// two generations of maps, dropping the older one whole when the current
// one is Retention old or holds its share of half of MaxEntries, so its
// memory follows the write rate and has a bound, and a claim costs the
// same at any number of IDs remembered. Past the bound, an ID is
// remembered for less than Retention: at 100,000 writes a second, the
// default bound holds the last 20 seconds or more. Use a shared store
// (transport/redis) for more, or for several collectors of a datacenter.
//
// IDs are kept as 128-bit hashes, with a seed of the process's own: a map
// of them holds no pointers for the garbage collector to follow, and two
// IDs are confused with odds of one in 2¹²⁸ per pair.
//
// The zero value is ready to use; set the fields before the first call.
type MemoryDedupe struct {
	// Retention is how long an applied ID is remembered, at least until
	// MaxEntries is reached and at most twice that; default 1 hour.
	// Duplicates arriving later than that are applied again.
	Retention time.Duration
	// MaxEntries bounds the IDs remembered, about 60 bytes each; default
	// 4,194,304.
	MaxEntries int
	// ClaimTTL is how long a claim lasts when its apply neither commits
	// nor releases it — it panicked, or its process died mid-apply —;
	// after it, the write may be claimed again. Default 10s, as
	// transport/redis's claims.
	ClaimTTL time.Duration

	init   sync.Once
	seeds  [2]maphash.Seed
	base   time.Time // the clock of deadlines and rotations
	half   int       // entries of a shard's current generation before it rotates
	shards [dedupeShards]dedupeShard
}

// dedupeShards is the number of shards of a MemoryDedupe.
const dedupeShards = 64

// dedupeShard is one shard: key → dedupeApplied, or the deadline of the
// claim in flight, in nanoseconds after MemoryDedupe.base.
type dedupeShard struct {
	mu       sync.Mutex
	cur, old map[dedupeKey]int64
	rotated  int64    // when cur was made, after base
	_        [64]byte // keeps shards' locks on cache lines of their own
}

// dedupeApplied marks an applied ID.
const dedupeApplied = -1

type dedupeKey [2]uint64

// DefaultDedupeEntries is the default MemoryDedupe.MaxEntries.
const DefaultDedupeEntries = 1 << 22

// setup applies the defaults and makes the shards, once.
func (m *MemoryDedupe) setup() {
	m.init.Do(func() {
		m.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
		m.base = time.Now()
		m.half = max(or(m.MaxEntries, DefaultDedupeEntries)/2/dedupeShards, 1)
		m.Retention = or(m.Retention, time.Hour)
		m.ClaimTTL = or(m.ClaimTTL, 10*time.Second)
		for i := range m.shards {
			sh := &m.shards[i]
			sh.cur, sh.old = make(map[dedupeKey]int64, min(m.half, 1<<10)), map[dedupeKey]int64{}
		}
	})
}

// key returns the key of id.
func (m *MemoryDedupe) key(id string) dedupeKey {
	return dedupeKey{maphash.String(m.seeds[0], id), maphash.String(m.seeds[1], id)}
}

// shard returns the shard and key of id, locked.
func (m *MemoryDedupe) shard(id string) (*dedupeShard, dedupeKey) {
	m.setup()
	k := m.key(id)
	sh := &m.shards[k[0]%dedupeShards]
	sh.mu.Lock()
	return sh, k
}

// Claim implements DedupeStore. It alone (and ClaimBatch) reads the clock
// and rotates the shard when due: Commit and Release follow a claim.
func (m *MemoryDedupe) Claim(_ context.Context, id string) (Claim, error) {
	sh, k := m.shard(id)
	defer sh.mu.Unlock()
	now := int64(time.Since(m.base)) // the monotonic clock: cheaper than Now
	m.rotate(sh, now)
	return m.claim(sh, k, now), nil
}

// rotate starts a new generation of sh, locked, when its current one is
// full or Retention old.
func (m *MemoryDedupe) rotate(sh *dedupeShard, now int64) {
	if len(sh.cur) >= m.half || now-sh.rotated >= int64(m.Retention) {
		// The new map grows a table at a time: sized whole, making it
		// would hold up the shard for the milliseconds it takes.
		sh.old, sh.cur, sh.rotated = sh.cur, make(map[dedupeKey]int64, min(len(sh.cur), 1<<10)), now
	}
}

// claim claims k in sh, locked, at now.
func (m *MemoryDedupe) claim(sh *dedupeShard, k dedupeKey, now int64) Claim {
	v, ok := sh.cur[k]
	if !ok {
		v, ok = sh.old[k]
	}
	switch {
	case ok && v == dedupeApplied:
		return Applied
	case ok && v > now:
		return InFlight
	}
	sh.cur[k] = now + int64(m.ClaimTTL) // a new claim, or one whose deadline passed
	return Claimed
}

// Commit implements DedupeStore.
func (m *MemoryDedupe) Commit(_ context.Context, id string) error {
	sh, k := m.shard(id)
	sh.cur[k] = dedupeApplied // shadows an in-flight mark in the older generation
	sh.mu.Unlock()
	return nil
}

// ClaimBatch implements BatchDedupeStore: each shard is locked once for
// the IDs of the batch it holds, taken in the batch's order, and the
// clock is read once.
func (m *MemoryDedupe) ClaimBatch(_ context.Context, ids []string, claims []Claim) error {
	m.setup()
	now := int64(time.Since(m.base))
	m.byShard(ids, func(sh *dedupeShard, keys []dedupeKey, at []int32) {
		m.rotate(sh, now)
		for j, k := range keys {
			claims[at[j]] = m.claim(sh, k, now)
		}
	})
	return nil
}

// CommitBatch implements BatchDedupeStore, a shard locked once.
func (m *MemoryDedupe) CommitBatch(_ context.Context, ids []string) error {
	m.byShard(ids, func(sh *dedupeShard, keys []dedupeKey, _ []int32) {
		for _, k := range keys {
			sh.cur[k] = dedupeApplied
		}
	})
	return nil
}

// dedupeScratch is byShard's working memory, reused from batch to batch.
type dedupeScratch struct {
	keys, sorted []dedupeKey
	at           []int32
}

var dedupeScratches = sync.Pool{New: func() any { return new(dedupeScratch) }}

// byShard calls f with each shard holding some of ids, locked, the keys
// of those IDs in the order of ids, and their indices in ids. Locking a
// shard once for its IDs, not once an ID, leaves the processor free to
// overlap the tables' cache misses, which a lock's atomic instruction
// would wait for.
func (m *MemoryDedupe) byShard(ids []string, f func(sh *dedupeShard, keys []dedupeKey, at []int32)) {
	m.setup()
	scratch := dedupeScratches.Get().(*dedupeScratch)
	defer dedupeScratches.Put(scratch)
	n := len(ids)
	if cap(scratch.keys) < n {
		scratch.keys, scratch.sorted, scratch.at = make([]dedupeKey, n), make([]dedupeKey, n), make([]int32, n)
	}
	keys, sorted, at := scratch.keys[:n], scratch.sorted[:n], scratch.at[:n]
	var starts [dedupeShards + 1]int32
	for i, id := range ids {
		keys[i] = m.key(id)
		starts[keys[i][0]%dedupeShards+1]++
	}
	for i := 1; i <= dedupeShards; i++ {
		starts[i] += starts[i-1]
	}
	// A counting sort by shard, stable: the IDs of a shard keep their order.
	next := starts
	for i, k := range keys {
		s := k[0] % dedupeShards
		sorted[next[s]], at[next[s]] = k, int32(i)
		next[s]++
	}
	for s := range dedupeShards {
		lo, hi := starts[s], starts[s+1]
		if lo == hi {
			continue
		}
		sh := &m.shards[s]
		sh.mu.Lock()
		f(sh, sorted[lo:hi], at[lo:hi])
		sh.mu.Unlock()
	}
}

// Release implements DedupeStore.
func (m *MemoryDedupe) Release(_ context.Context, id string) error {
	sh, k := m.shard(id)
	delete(sh.cur, k)
	delete(sh.old, k)
	sh.mu.Unlock()
	return nil
}

// Len returns how many IDs m remembers, applied or in flight: the size a
// metric reports (metrics/prom's Options.Dedupe).
func (m *MemoryDedupe) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.old)
		sh.mu.Unlock()
	}
	return n
}
