// Package demo holds what the runnable examples share: a datacenter's
// stand-in database and the convergence count they end with.
package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
)

// Datacenters are the two datacenters of the examples.
var Datacenters = []string{"unicom", "telecom"}

// Other returns the other of the two Datacenters.
func Other(dc string) string {
	if dc == Datacenters[0] {
		return Datacenters[1]
	}
	return Datacenters[0]
}

// Store stands in for a datacenter's database and cache: last writer wins
// per key, by (Version, Origin). Its applies of writes from other
// datacenters fail at a settable rate, like a flaky database.
type Store struct {
	dc       string
	mu       sync.Mutex
	failRate float64
	rng      *rand.Rand
	values   map[string]*dcsync.Request
	applied  map[string]bool
}

// NewStore returns the empty store of dc; seed drives its failures.
func NewStore(dc string, seed uint64) *Store {
	return &Store{dc: dc, rng: rand.New(rand.NewPCG(seed, uint64(len(dc)))),
		values: map[string]*dcsync.Request{}, applied: map[string]bool{}}
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
	s.applied[req.ID] = true
	return nil
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

// Present counts the writes that every store has applied.
func Present(stores ...*Store) int {
	all := map[string]int{}
	for _, s := range stores {
		s.mu.Lock()
		for id := range s.applied {
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

// PrintCounts prints how many records each stage logged, per datacenter
// and outcome.
func PrintCounts(out io.Writer, audit *auditmem.Log) {
	var lines []string
	for k, n := range audit.Counts() {
		lines = append(lines, fmt.Sprintf("  %-8s %-8s %-6s %6d", k.DC, k.Stage, k.Status, n))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
}

// WriteEverywhere writes n writes in each datacenter at once, to 100 keys,
// so the datacenters sometimes write the same key concurrently.
func WriteEverywhere(ctx context.Context, syncers map[string]*dcsync.Syncer, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	for dc, s := range syncers {
		g.Go(func() error {
			for i := range n {
				req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set",
					Payload: fmt.Appendf(nil, "%s-%d", dc, i)}
				if err := s.Write(ctx, req); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
