package transporttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync"
)

// Store is a recording dcsync.Processor: it keeps each key's winning write,
// last writer wins by (Version, Origin) as a real store would, counts how
// many times it applied each write, fails the keys it is told to, and calls
// a hook after every apply, so a test can act in the middle of a stream.
// The zero value is not usable; create it with NewStore.
type Store struct {
	count atomic.Int64

	mu      sync.Mutex
	values  map[string]*dcsync.Request // key -> winning write
	applies map[string]int             // request ID -> times applied
	fail    map[string]error           // key -> error its applies fail with
	onApply func(n int64)
}

// NewStore returns an empty Store that fails no apply.
func NewStore() *Store {
	return &Store{values: map[string]*dcsync.Request{}, applies: map[string]int{}, fail: map[string]error{}}
}

// Process implements dcsync.Processor.
func (s *Store) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	if err := s.fail[req.Key]; err != nil {
		s.mu.Unlock()
		return err
	}
	if cur := s.values[req.Key]; cur == nil || req.Newer(cur.Version, cur.Origin) {
		s.values[req.Key] = req
	}
	s.applies[req.ID]++
	hook := s.onApply
	s.mu.Unlock()
	n := s.count.Add(1)
	if hook != nil {
		hook(n)
	}
	return nil
}

// FailKey makes the applies of writes to key fail with err, or succeed
// again when err is nil.
func (s *Store) FailKey(key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, key)
		return
	}
	s.fail[key] = err
}

// OnApply sets a function called after every apply with the number of
// applies so far.
func (s *Store) OnApply(f func(n int64)) {
	s.mu.Lock()
	s.onApply = f
	s.mu.Unlock()
}

// Count returns how many applies happened, duplicates included.
func (s *Store) Count() int64 { return s.count.Load() }

// WaitCount waits until the store counted n applies, polling, for at most
// d; it reports whether it got there.
func (s *Store) WaitCount(n int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for s.Count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Applies returns how many times the write id was applied.
func (s *Store) Applies(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies[id]
}

// Applied returns how many distinct writes were applied.
func (s *Store) Applied() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.applies)
}

// Keys returns how many distinct keys hold a value.
func (s *Store) Keys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

// Get returns the winning write of key, or nil.
func (s *Store) Get(key string) *dcsync.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}

// Digest hashes every key and the ID of its winning write, so two stores
// holding the same state have the same digest.
func (s *Store) Digest() string {
	s.mu.Lock()
	keys := make([]string, 0, len(s.values))
	for k := range s.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, s.values[k].ID)
	}
	s.mu.Unlock()
	return hex.EncodeToString(h.Sum(nil))[:16]
}
