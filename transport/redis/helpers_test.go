package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// store is a datacenter's state: last-writer-wins values per key and how
// often each write was applied. Keys in fail make Process fail.
type store struct {
	mu      sync.Mutex
	values  map[string]*dcsync.Request
	applies map[string]int
	first   map[string]time.Time // when each write was first applied
	fail    map[string]error
}

func newStore() *store {
	return &store{values: map[string]*dcsync.Request{}, applies: map[string]int{},
		first: map[string]time.Time{}, fail: map[string]error{}}
}

func (s *store) Process(_ context.Context, r *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail[r.Key]; err != nil {
		return err
	}
	if s.applies[r.ID]++; s.applies[r.ID] == 1 {
		s.first[r.ID] = time.Now()
	}
	if cur := s.values[r.Key]; cur == nil || r.Newer(cur.Version, cur.Origin) {
		s.values[r.Key] = r
	}
	return nil
}

// failKey makes Process fail for key with err, or succeed again when err
// is nil.
func (s *store) failKey(key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, key)
		return
	}
	s.fail[key] = err
}

// has reports how many of ids were applied.
func (s *store) has(ids []string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if s.applies[id] > 0 {
			n++
		}
	}
	return n
}

// testConfig returns a NodeConfig tuned for tests: short waits everywhere.
func testConfig(dc string, client goredis.UniversalClient, peers map[string]goredis.UniversalClient) NodeConfig {
	return NodeConfig{DC: dc, Client: client, Peers: peers, Block: 50 * time.Millisecond,
		ClaimIdle: 400 * time.Millisecond, MaxAttempts: 3, TrimInterval: 50 * time.Millisecond,
		Backoff: dcsync.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond},
		Dedupe:  DedupeOptions{ClaimTTL: 200 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func newClient(t testing.TB, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// dc is one running datacenter: its Redis, Node, Syncer and state.
type dc struct {
	name   string
	redis  *testserver.Redis
	client goredis.UniversalClient
	node   *Node
	sync   *dcsync.Syncer
	store  *store
	stop   func()
}

// start runs a Node and Syncer for name with cfg and proc, until stop or
// the end of the test.
func start(t testing.TB, name string, srv *testserver.Redis, cfg NodeConfig, proc dcsync.Processor) *dc {
	t.Helper()
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dcsync.New(node.Wire(dcsync.Config{Processor: proc,
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 2}}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, s) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run of %s: %v", name, err)
			}
			s.Close()
		})
	}
	t.Cleanup(stop)
	st, _ := proc.(*store)
	return &dc{name: name, redis: srv, client: cfg.Client, node: node, sync: s, store: st, stop: stop}
}

// pair starts two datacenters, unicom and telecom, each on its own Redis,
// with a store each. tweak, when not nil, adjusts each NodeConfig.
func pair(t testing.TB, tweak func(*NodeConfig)) (unicom, telecom *dc) {
	t.Helper()
	return pairWith(t, tweak, newStore(), newStore())
}

// pairWith is pair with the given Processors.
func pairWith(t testing.TB, tweak func(*NodeConfig), procU, procT dcsync.Processor) (unicom, telecom *dc) {
	t.Helper()
	ru, rt := testserver.StartRedis(t), testserver.StartRedis(t)
	cu, ct := newClient(t, ru.Addr()), newClient(t, rt.Addr())
	cfgU := testConfig("unicom", cu, map[string]goredis.UniversalClient{"telecom": ct})
	cfgT := testConfig("telecom", ct, map[string]goredis.UniversalClient{"unicom": cu})
	if tweak != nil {
		tweak(&cfgU)
		tweak(&cfgT)
	}
	return start(t, "unicom", ru, cfgU, procU), start(t, "telecom", rt, cfgT, procT)
}

// write writes n requests in d with keys prefix-i and returns their IDs.
func write(t testing.TB, d *dc, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		req := &dcsync.Request{Key: fmt.Sprintf("%s-%d", prefix, i), Op: "set", Payload: []byte("v")}
		if err := d.sync.Write(context.Background(), req); err != nil {
			t.Fatalf("write %d in %s: %v", i, d.name, err)
		}
		ids[i] = req.ID
	}
	return ids
}

// eventually polls cond until it holds or the bound passes, then fails the
// test with what describe says. It bounds a wait; it asserts no speed.
func eventually(t testing.TB, bound time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %v: %s", bound, describe())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converge waits until every id is applied in d.
func converge(t testing.TB, d *dc, ids []string) {
	t.Helper()
	eventually(t, 60*time.Second, func() bool { return d.store.has(ids) == len(ids) },
		func() string {
			return fmt.Sprintf("%s applied %d of %d writes; node stats %+v, syncer stats %+v",
				d.name, d.store.has(ids), len(ids), d.node.Stats(), d.sync.Stats())
		})
}
