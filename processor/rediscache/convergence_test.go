package rediscache_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/processor/rediscache"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// mesh is a full mesh of datacenters in one process, each with its own
// redis-server and Cache, linked by the memory transport and sharing one
// audit log.
type mesh struct {
	t      *testing.T
	net    *memtransport.Network
	audit  *memaudit.Log
	names  []string
	clocks map[string]func() time.Time
	// ahead, when set, is the reconcilers' clock: see reconcile.
	ahead  func() time.Time
	sync   map[string]*dcsync.Syncer
	caches map[string]*rediscache.Cache
}

var quiet = slog.New(slog.DiscardHandler)

// newMesh starts one datacenter per name; clocks gives the wall clock of
// the datacenters that should not read time.Now.
func newMesh(t *testing.T, seed uint64, clocks map[string]func() time.Time, names ...string) *mesh {
	t.Helper()
	m := &mesh{t: t, net: memtransport.NewNetwork(seed), audit: memaudit.New(0), names: names,
		clocks: clocks, sync: map[string]*dcsync.Syncer{}, caches: map[string]*rediscache.Cache{}}
	for _, dc := range names {
		cache, _ := startCache(t, rediscache.Options{})
		s, err := dcsync.New(dcsync.Config{
			DC: dc, Peers: m.senders(dc), Processor: cache, Audit: m.audit, Now: clocks[dc],
			// Forget applied IDs at once, so every duplicate and replay
			// reaches the Cache: its version check alone must hold.
			Dedupe:   &dcsync.MemoryDedupe{Retention: time.Nanosecond},
			Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 3}},
			Logger:   quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		m.net.Attach(dc, s.Collector())
		m.sync[dc], m.caches[dc] = s, cache
	}
	return m
}

func (m *mesh) senders(dc string) map[string]dcsync.Sender { return m.net.Peers(dc, m.names...) }

// fault sets f on every link.
func (m *mesh) fault(f memtransport.Faults) { m.net.SetFaultsBetween(f, m.names...) }

// quiesce waits until every queued delivery has been tried and every
// audit record appended, everywhere.
func (m *mesh) quiesce() {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 { // deliveries cause records in the peers
		for _, dc := range m.names {
			if err := m.sync[dc].Flush(ctx); err != nil {
				m.t.Fatal(err)
			}
		}
	}
}

// reconcile runs reconciler passes in every datacenter until none is
// failing, at most rounds passes each.
//
// A reconciler's window ends at its wall clock, but a write's Written time
// is its version's, and a datacenter that collected writes from a peer
// whose clock runs ahead stamps its own writes ahead too: against the plain
// wall clock those writes fall after the window and are never repaired.
// m.ahead, when set, gives the reconcilers a clock as far ahead as the
// furthest datacenter.
func (m *mesh) reconcile(rounds int) {
	m.t.Helper()
	for _, dc := range m.names {
		now := m.clocks[dc]
		if m.ahead != nil {
			now = m.ahead
		}
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: dc, Peers: m.senders(dc), Audit: m.audit,
			Grace: -1, Now: now, Logger: quiet,
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 5}})
		if err != nil {
			m.t.Fatal(err)
		}
		for pass := 1; ; pass++ {
			rep, err := r.RunOnce(context.Background())
			if err != nil {
				m.t.Fatal(err)
			}
			m.t.Logf("reconcile %s pass %d: scanned %d, repaired %d, failing %d", dc, pass, rep.Scanned, rep.Repaired, rep.Failing)
			if rep.Failing == 0 {
				break
			}
			if pass == rounds {
				m.t.Fatalf("%s: %d writes still failing after %d passes", dc, rep.Failing, rounds)
			}
		}
	}
	m.quiesce()
}

// write writes in dc and returns the request as stamped.
func (m *mesh) write(dc, key, op, value string, opts ...dcsync.WriteOption) *dcsync.Request {
	m.t.Helper()
	req := &dcsync.Request{Key: key, Op: op, Payload: []byte(value)}
	if err := m.sync[dc].Write(context.Background(), req, opts...); err != nil {
		m.t.Fatalf("write %s in %s: %v", key, dc, err)
	}
	return req
}

// checkConverged fails unless every datacenter's Redis holds, for every
// key written, the entry of the greatest write to that key.
func (m *mesh) checkConverged(written []*dcsync.Request) {
	m.t.Helper()
	winner := map[string]*dcsync.Request{}
	for _, r := range written {
		if w := winner[r.Key]; w == nil || r.Newer(w.Version, w.Origin) {
			winner[r.Key] = r
		}
	}
	for key, w := range winner {
		for _, dc := range m.names {
			e := entry(m.t, m.caches[dc], key)
			deleted := w.Op == rediscache.OpDelete
			if e.ID != w.ID || e.Version != w.Version || e.Origin != w.Origin || e.Deleted != deleted ||
				(!deleted && !bytes.Equal(e.Value, w.Payload)) {
				m.t.Errorf("%s: %s = %+v (value %q), want write %s from %s version %d %s %q",
					dc, key, e, e.Value, w.ID, w.Origin, w.Version, w.Op, w.Payload)
			}
		}
	}
}

// replay sends every write again from its origin to every peer, in random
// order, as a reconciler replaying old writes would.
func (m *mesh) replay(written []*dcsync.Request, rng *rand.Rand) {
	m.t.Helper()
	byOrigin := map[string][]*dcsync.Request{}
	for _, r := range written {
		byOrigin[r.Origin] = append(byOrigin[r.Origin], r)
	}
	for origin, reqs := range byOrigin {
		rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		for peer, s := range m.senders(origin) {
			if err := s.Send(context.Background(), reqs); err != nil {
				m.t.Fatalf("replay %s -> %s: %v", origin, peer, err)
			}
		}
	}
}

// Three datacenters write the same keys at once over links that delay,
// fail, duplicate, reorder and lose acknowledgements; the reconcilers
// repair what was given up, and every write is then replayed. Every Redis
// must end with the greatest write of every key — also when one
// datacenter's clock runs 5s ahead.
func TestThreeDatacentersConverge(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"synced clocks", 0},
		{"mobile 5s ahead", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ahead := func() time.Time { return time.Now().Add(tc.skew) }
			m := newMesh(t, 42, map[string]func() time.Time{"mobile": ahead}, "unicom", "telecom", "mobile")
			m.ahead = ahead
			m.fault(memtransport.Faults{Fail: 0.5, DropAck: 0.1, Duplicate: 0.3, Reorder: 0.5, Delay: 2 * time.Millisecond})

			const keys, writesPerDC = 12, 150
			var mu sync.Mutex
			var written []*dcsync.Request
			var wg sync.WaitGroup
			for i, dc := range m.names {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 9))
					for n := range writesPerDC {
						op := rediscache.OpSet
						if rng.IntN(5) == 0 {
							op = rediscache.OpDelete
						}
						req := &dcsync.Request{Key: fmt.Sprintf("user:%d", rng.IntN(keys)), Op: op,
							Payload: fmt.Appendf(nil, "%s-%d", dc, n)}
						if err := m.sync[dc].Write(context.Background(), req); err != nil {
							t.Errorf("write in %s: %v", dc, err)
							return
						}
						mu.Lock()
						written = append(written, req)
						mu.Unlock()
						time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
					}
				}()
			}
			wg.Wait()
			m.quiesce()
			m.reconcile(20)
			m.checkConverged(written)

			m.fault(memtransport.Faults{Duplicate: 0.5, Reorder: 1})
			m.replay(written, rand.New(rand.NewPCG(7, 7)))
			m.checkConverged(written)

			var stale uint64
			for _, c := range m.caches {
				stale += c.Stats().Stale
			}
			if stale == 0 {
				t.Error("no write was dropped as stale: the version check was not exercised")
			}
			t.Logf("%d writes; %d stale applies dropped across the three caches", len(written), stale)
		})
	}
}
