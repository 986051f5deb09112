package dcsync_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// store is a datacenter's state: last-writer-wins values per key, and how
// many times each write was applied.
type store struct {
	mu       sync.Mutex
	values   map[string]*dcsync.Request // key -> winning write
	applies  map[string]int             // request ID -> times applied
	failRate float64                    // share of applies that fail
	dc       string                     // when set, only writes from elsewhere fail
	rng      *rand.Rand
}

var errFlaky = errors.New("flaky processor")

func newStore(failRate float64, seed uint64) *store {
	return &store{values: map[string]*dcsync.Request{}, applies: map[string]int{},
		failRate: failRate, rng: rand.New(rand.NewPCG(seed, 7))}
}

func (s *store) Process(_ context.Context, r *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failRate > 0 && r.Origin != s.dc && s.rng.Float64() < s.failRate {
		return errFlaky
	}
	s.applies[r.ID]++
	if cur := s.values[r.Key]; cur == nil || r.Newer(cur.Version, cur.Origin) {
		s.values[r.Key] = r
	}
	return nil
}

func (s *store) setFailRate(p float64) {
	s.mu.Lock()
	s.failRate = p
	s.mu.Unlock()
}

// cluster is a full mesh of datacenters in one process, sharing one audit
// log, or each with its own.
type cluster struct {
	t      testing.TB
	net    *memtransport.Network
	audit  *memaudit.Log            // the shared log, or the first datacenter's
	logs   map[string]*memaudit.Log // each datacenter's log
	names  []string
	sync   map[string]*dcsync.Syncer
	stores map[string]*store
}

func newCluster(t testing.TB, seed uint64, names ...string) *cluster {
	t.Helper()
	return newClusterLogs(t, seed, false, names...)
}

// newClusterLogs is newCluster with one audit log per datacenter when
// perDC is set.
func newClusterLogs(t testing.TB, seed uint64, perDC bool, names ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, net: memtransport.NewNetwork(seed), audit: memaudit.New(0), names: names,
		logs: map[string]*memaudit.Log{}, sync: map[string]*dcsync.Syncer{}, stores: map[string]*store{}}
	for i, dc := range names {
		c.logs[dc] = c.audit
		if perDC && i > 0 {
			c.logs[dc] = memaudit.New(0)
		}
	}
	for i, dc := range names {
		peers := c.net.Peers(dc, names...)
		st := newStore(0, seed+uint64(i))
		st.dc = dc
		s, err := dcsync.New(dcsync.Config{DC: dc, Peers: peers, Processor: st, Audit: c.logs[dc],
			Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		c.net.Attach(dc, s.Collector())
		c.sync[dc], c.stores[dc] = s, st
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) close() {
	for _, s := range c.sync {
		s.Close()
	}
}

// quiesce waits until every queued delivery has been tried and every audit
// record appended, everywhere: deliveries cause audit records in peers.
func (c *cluster) quiesce() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 {
		for _, dc := range c.names {
			if err := c.sync[dc].Flush(ctx); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// reconcile runs reconciler passes in every datacenter until none fails,
// at most rounds times.
func (c *cluster) reconcile(rounds int) {
	c.t.Helper()
	for _, dc := range c.names {
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: dc, Peers: c.net.Peers(dc, c.names...),
			Audit: c.logs[dc], PeerAudit: c.peerLogs(dc), Grace: -1,
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 5}})
		if err != nil {
			c.t.Fatal(err)
		}
		for i := 0; ; i++ {
			rep, err := r.RunOnce(context.Background())
			if err != nil {
				c.t.Fatal(err)
			}
			if rep.Failing == 0 {
				break
			}
			if i == rounds {
				c.t.Fatalf("%s: still %d failing after %d passes: %+v", dc, rep.Failing, rounds, rep)
			}
		}
	}
}

// checkConverged fails unless every datacenter applied every written ID
// exactly once and holds the same winner for every key.
func (c *cluster) checkConverged(written map[string]bool) {
	c.t.Helper()
	for _, dc := range c.names {
		st := c.stores[dc]
		st.mu.Lock()
		for id := range written {
			if n := st.applies[id]; n != 1 {
				c.t.Errorf("%s applied %s %d times, want 1", dc, id, n)
			}
		}
		if len(st.applies) != len(written) {
			c.t.Errorf("%s applied %d writes, want %d", dc, len(st.applies), len(written))
		}
		st.mu.Unlock()
	}
	first := c.stores[c.names[0]]
	for _, dc := range c.names[1:] {
		if a, b := winners(first), winners(c.stores[dc]); fmt.Sprint(a) != fmt.Sprint(b) {
			c.t.Errorf("%s and %s disagree:\n%v\n%v", c.names[0], dc, a, b)
		}
	}
}

func winners(s *store) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, r := range s.values {
		out[k] = r.ID
	}
	return out
}

// recordingSender is a Sender whose behaviour a test scripts.
type recordingSender struct {
	mu     sync.Mutex
	send   func(reqs []*dcsync.Request) error
	got    [][]string
	closed bool
}

func (s *recordingSender) Send(_ context.Context, reqs []*dcsync.Request) error {
	s.mu.Lock()
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	s.got = append(s.got, ids)
	f := s.send
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(reqs)
}

func (s *recordingSender) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *recordingSender) delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, b := range s.got {
		for _, id := range b {
			out[id]++
		}
	}
	return out
}

// peerLogs returns the logs of dc's peers, for ReconcilerConfig.PeerAudit.
func (c *cluster) peerLogs(dc string) map[string]dcsync.AuditLog {
	out := map[string]dcsync.AuditLog{}
	for _, peer := range c.names {
		if peer != dc {
			out[peer] = c.logs[peer]
		}
	}
	return out
}
