package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/dcsync/dcsync"
)

// Store stands in for a datacenter's database and cache: last writer wins
// per key, by (Version, Origin), so it converges whatever the order of
// delivery, and it remembers how many times it applied each write. Its
// applies of writes from other datacenters fail at a settable rate, like a
// flaky database.
type Store struct {
	dc       string
	mu       sync.Mutex
	failRate float64
	rng      *rand.Rand
	values   map[string]*dcsync.Request // key -> winning write
	applies  map[string]int             // request ID -> times applied
}

// NewStore returns the empty store of dc; seed drives its failures.
func NewStore(dc string, seed uint64) *Store {
	return &Store{dc: dc, rng: rand.New(rand.NewPCG(seed, uint64(len(dc)))),
		values: map[string]*dcsync.Request{}, applies: map[string]int{}}
}

// SetFailRate sets the share of applies of other datacenters' writes that fail.
func (s *Store) SetFailRate(r float64) {
	s.mu.Lock()
	s.failRate = r
	s.mu.Unlock()
}

// Process implements dcsync.Processor.
func (s *Store) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Origin != s.dc && s.failRate > 0 && s.rng.Float64() < s.failRate {
		return fmt.Errorf("%s: database timeout", s.dc)
	}
	if cur := s.values[req.Key]; cur == nil || req.Newer(cur.Version, cur.Origin) {
		s.values[req.Key] = req
	}
	s.applies[req.ID]++
	return nil
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

// Winners returns the ID of the winning write of every key.
func (s *Store) Winners() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.values))
	for k, r := range s.values {
		out[k] = r.ID
	}
	return out
}

// Digest hashes every key and the ID of its winning write, so two stores
// holding the same state have the same digest.
func (s *Store) Digest() string {
	winners := s.Winners()
	keys := make([]string, 0, len(winners))
	for k := range winners {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, winners[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Present counts the writes that every store has applied.
func Present(stores ...*Store) int {
	all := map[string]int{}
	for _, s := range stores {
		s.mu.Lock()
		for id := range s.applies {
			all[id]++
		}
		s.mu.Unlock()
	}
	n := 0
	for _, c := range all {
		if c == len(stores) {
			n++
		}
	}
	return n
}
