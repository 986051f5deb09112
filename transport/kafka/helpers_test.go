package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// The package's tests kill and restart brokers, so they run on brokers of
// their own.
func TestMain(m *testing.M) { os.Exit(testserver.KafkaMain(m, true)) }

// store is a datacenter's state: last-writer-wins values per key and how
// often each write was applied. Keys in fail make Process fail.
type store struct {
	mu      sync.Mutex
	values  map[string]*dcsync.Request
	applies map[string]int
	fail    map[string]error
	once    map[string]error // fail the next apply of the key only
}

func newStore() *store {
	return &store{values: map[string]*dcsync.Request{}, applies: map[string]int{}, fail: map[string]error{}, once: map[string]error{}}
}

func (s *store) Process(_ context.Context, r *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail[r.Key]; err != nil {
		return err
	}
	if err := s.once[r.Key]; err != nil {
		delete(s.once, r.Key)
		return err
	}
	s.applies[r.ID]++
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

// failOnce makes the next Process of key fail with err.
func (s *store) failOnce(key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.once[key] = err
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

// winners returns the ID of the value of each key.
func (s *store) winners() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := make(map[string]string, len(s.values))
	for k, r := range s.values {
		w[k] = r.ID
	}
	return w
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// prefix returns a topic prefix that no other test uses.
func prefix(t testing.TB) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-")
	return "t-" + name + "-" + hex.EncodeToString(b[:])
}

// testConfig returns a NodeConfig tuned for tests: short waits everywhere.
func testConfig(dc string, brokers string, peers map[string][]string, prefix string) NodeConfig {
	return NodeConfig{DC: dc, Brokers: []string{brokers}, Peers: peers, Prefix: prefix,
		Block: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, MaxAttempts: 3, BatchSize: 100,
		Backoff: dcsync.Backoff{Initial: 5 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// dc is one running datacenter: its Node, Syncer and state.
type dc struct {
	name  string
	node  *Node
	sync  *dcsync.Syncer
	store *store
	stop  func()
}

// start runs a Node and Syncer for name with cfg and proc, until stop or
// the end of the test.
func start(t testing.TB, cfg NodeConfig, proc dcsync.Processor) *dc {
	t.Helper()
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dcsync.New(node.Wire(dcsync.Config{Processor: proc,
		Delivery: dcsync.Delivery{Timeout: 5 * time.Second,
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 2}}}))
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
				t.Errorf("Run of %s: %v", cfg.DC, err)
			}
			s.Close()
			node.Close()
		})
	}
	t.Cleanup(stop)
	st, _ := proc.(*store)
	return &dc{name: cfg.DC, node: node, sync: s, store: st, stop: stop}
}

// pair starts two datacenters, unicom on broker A and telecom on broker
// B, with a store each, on topics of their own. tweak, when not nil,
// adjusts each NodeConfig.
func pair(t testing.TB, tweak func(*NodeConfig)) (unicom, telecom *dc) {
	t.Helper()
	a, b := testserver.Kafka(t)
	p := prefix(t)
	cfgU := testConfig("unicom", a, map[string][]string{"telecom": {b}}, p)
	cfgT := testConfig("telecom", b, map[string][]string{"unicom": {a}}, p)
	if tweak != nil {
		tweak(&cfgU)
		tweak(&cfgT)
	}
	return start(t, cfgU, newStore()), start(t, cfgT, newStore())
}

// write writes n requests in d with keys prefix-i, from up to 8
// goroutines, and returns their IDs.
func write(t testing.TB, d *dc, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				req := &dcsync.Request{Key: fmt.Sprintf("%s-%d", prefix, i), Op: "set", Payload: []byte("v")}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				err := d.sync.Write(ctx, req)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("write %d in %s: %w", i, d.name, err)
					return
				}
				ids[i] = req.ID
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
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
		time.Sleep(20 * time.Millisecond)
	}
}

// converge waits until every id is applied in d.
func converge(t testing.TB, d *dc, ids []string) {
	t.Helper()
	eventually(t, 2*time.Minute, func() bool { return d.store.has(ids) == len(ids) },
		func() string {
			return fmt.Sprintf("%s applied %d of %d writes; node stats %+v, syncer stats %+v",
				d.name, d.store.has(ids), len(ids), d.node.Stats(), d.sync.Stats())
		})
}

// deadLetters waits until d has want dead letters and returns them.
func deadLetters(t *testing.T, d *dc, want int) []DeadLetter {
	t.Helper()
	var got []DeadLetter
	eventually(t, time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		got, err = d.node.DeadLetters(ctx, 100)
		return err == nil && len(got) >= want
	}, func() string { return fmt.Sprintf("%s has %d dead letters, want %d: %+v", d.name, len(got), want, got) })
	if len(got) != want {
		t.Fatalf("%s has %d dead letters, want %d: %+v", d.name, len(got), want, got)
	}
	return got
}
