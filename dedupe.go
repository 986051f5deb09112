package dcsync

import (
	"context"
	"errors"
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
// remembers applied IDs for at least Retention and at most twice that, in two
// generations of maps, so its memory follows the write rate, not the history.
type MemoryDedupe struct {
	// Retention is how long an applied ID is remembered; default 1 hour.
	// Duplicates arriving later than that are applied again.
	Retention time.Duration

	mu       sync.Mutex
	cur, old map[string]bool // id -> applied (false: in flight)
	rotated  time.Time
}

// Claim implements DedupeStore.
func (m *MemoryDedupe) Claim(_ context.Context, id string) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rotate()
	applied, ok := m.cur[id]
	if !ok {
		applied, ok = m.old[id]
	}
	switch {
	case ok && applied:
		return Applied, nil
	case ok:
		return InFlight, nil
	}
	m.cur[id] = false
	return Claimed, nil
}

// Commit implements DedupeStore.
func (m *MemoryDedupe) Commit(_ context.Context, id string) error {
	m.mu.Lock()
	m.rotate()
	m.cur[id] = true
	delete(m.old, id)
	m.mu.Unlock()
	return nil
}

// Release implements DedupeStore.
func (m *MemoryDedupe) Release(_ context.Context, id string) error {
	m.mu.Lock()
	delete(m.cur, id)
	delete(m.old, id)
	m.mu.Unlock()
	return nil
}

// rotate drops the older generation once the current one is Retention old.
func (m *MemoryDedupe) rotate() {
	now := time.Now()
	if m.cur == nil {
		m.cur, m.old, m.rotated = map[string]bool{}, map[string]bool{}, now
		return
	}
	if now.Sub(m.rotated) >= or(m.Retention, time.Hour) {
		m.old, m.cur, m.rotated = m.cur, make(map[string]bool, len(m.cur)), now
	}
}
