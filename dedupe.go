package dcsync

import (
	"context"
	"errors"
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

// ErrInFlight is returned for a write that another worker of the same
// datacenter is applying at this moment. It is retryable: the retry will
// find it applied.
var ErrInFlight = errors.New("dcsync: write is being applied by another worker")

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

// MemoryDedupe is an in-process DedupeStore, the default of a Syncer. It
// remembers applied IDs in two generations of maps, dropping the older one
// whole when the current one is Retention old or holds half of MaxEntries,
// so its memory follows the write rate and has a bound. Past the bound, an
// ID is remembered for less than Retention: at 100,000 writes a second,
// the default bound holds the last 20 seconds or more. Use a shared store
// (transport/redis) for more, or for several collectors of a datacenter.
//
// IDs are kept as 128-bit hashes, with a seed of the process's own: a map
// of them holds no pointers for the garbage collector to follow, and two
// IDs are confused with odds of one in 2¹²⁸ per pair.
type MemoryDedupe struct {
	// Retention is how long an applied ID is remembered, at least until
	// MaxEntries is reached and at most twice that; default 1 hour.
	// Duplicates arriving later than that are applied again.
	Retention time.Duration
	// MaxEntries bounds the IDs remembered, about 60 bytes each; default
	// 4,194,304.
	MaxEntries int

	mu       sync.Mutex
	seeds    [2]maphash.Seed
	cur, old map[dedupeKey]bool // key -> applied (false: in flight)
	rotated  time.Time
}

type dedupeKey [2]uint64

// DefaultDedupeEntries is the default MemoryDedupe.MaxEntries.
const DefaultDedupeEntries = 1 << 22

func (m *MemoryDedupe) key(id string) dedupeKey {
	return dedupeKey{maphash.String(m.seeds[0], id), maphash.String(m.seeds[1], id)}
}

// Claim implements DedupeStore.
func (m *MemoryDedupe) Claim(_ context.Context, id string) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rotate()
	k := m.key(id)
	applied, ok := m.cur[k]
	if !ok {
		applied, ok = m.old[k]
	}
	switch {
	case ok && applied:
		return Applied, nil
	case ok:
		return InFlight, nil
	}
	m.cur[k] = false
	return Claimed, nil
}

// Commit implements DedupeStore.
func (m *MemoryDedupe) Commit(_ context.Context, id string) error {
	m.mu.Lock()
	m.rotate()
	m.cur[m.key(id)] = true // shadows an in-flight mark in the older generation
	m.mu.Unlock()
	return nil
}

// Release implements DedupeStore.
func (m *MemoryDedupe) Release(_ context.Context, id string) error {
	m.mu.Lock()
	m.rotate()
	k := m.key(id)
	delete(m.cur, k)
	delete(m.old, k)
	m.mu.Unlock()
	return nil
}

// rotate drops the older generation once the current one is Retention old
// or full.
func (m *MemoryDedupe) rotate() {
	half := or(m.MaxEntries, DefaultDedupeEntries) / 2
	switch {
	case m.cur == nil:
		m.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
		m.cur, m.old, m.rotated = make(map[dedupeKey]bool, min(half, 1<<16)), map[dedupeKey]bool{}, time.Now()
	// Since reads only the monotonic clock: cheaper than Now.
	case len(m.cur) >= half || time.Since(m.rotated) >= or(m.Retention, time.Hour):
		// The new map grows a table at a time: sized whole, making it
		// would hold up every collector for the milliseconds it takes.
		m.old, m.cur, m.rotated = m.cur, make(map[dedupeKey]bool, min(len(m.cur), 1<<16)), time.Now()
	}
}

// Len returns how many IDs m remembers, applied or in flight: the size a
// metric reports (metrics/prom's Options.Dedupe).
func (m *MemoryDedupe) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cur) + len(m.old)
}
