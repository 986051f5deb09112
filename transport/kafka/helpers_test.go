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
	"github.com/dcsync/dcsync/internal/wait"
	"github.com/dcsync/dcsync/transport/transporttest"
)

// The package's tests kill and restart brokers, so they run on brokers of
// their own.
func TestMain(m *testing.M) { os.Exit(testserver.KafkaMain(m, true)) }

// failing fails the next apply of each key in once, then hands writes
// to the Store.
type failing struct {
	*transporttest.Store
	mu   sync.Mutex
	once map[string]error
}

func newStore() *failing { return &failing{Store: transporttest.NewStore(), once: map[string]error{}} }

func (f *failing) Process(ctx context.Context, r *dcsync.Request) error {
	f.mu.Lock()
	err := f.once[r.Key]
	delete(f.once, r.Key)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.Store.Process(ctx, r)
}

// failOnce makes the next apply of key fail with err.
func (f *failing) failOnce(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.once[key] = err
}

// has reports how many of ids were applied.
func (f *failing) has(ids []string) int {
	n := 0
	for _, id := range ids {
		if f.Applies(id) > 0 {
			n++
		}
	}
	return n
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
	store *failing
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
		Delivery: dcsync.Delivery{Timeout: 2 * time.Second,
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 2}}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, s) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run of %s: %v", cfg.DC, err)
		}
		s.Close()
		node.Close()
	})
	t.Cleanup(stop)
	st, _ := proc.(*failing)
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

// within polls cond every 20ms for up to bound, and reports whether it
// held. It bounds a wait; it asserts no speed.
func within(bound time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for !cond() {
		if !wait.Sleep(ctx, 20*time.Millisecond) {
			return cond()
		}
	}
	return true
}

// converge waits until every id is applied in d.
func converge(t testing.TB, d *dc, ids []string) {
	t.Helper()
	if !within(2*time.Minute, func() bool { return d.store.has(ids) == len(ids) }) {
		t.Fatalf("%s applied %d of %d writes; node stats %+v, syncer stats %+v",
			d.name, d.store.has(ids), len(ids), d.node.Stats(), d.sync.Stats())
	}
}

// deadLetters waits until d has want dead letters and returns them.
func deadLetters(t *testing.T, d *dc, want int) []DeadLetter {
	t.Helper()
	var got []DeadLetter
	within(time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		got, err = d.node.DeadLetters(ctx, 100)
		return err == nil && len(got) >= want
	})
	if len(got) != want {
		t.Fatalf("%s has %d dead letters, want %d: %+v", d.name, len(got), want, got)
	}
	return got
}
