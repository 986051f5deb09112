// Command redis-mq runs the quickstart's two datacenters, unicom and
// telecom, over Redis Streams: each datacenter has its own Redis, holding
// its outbound stream (the durable outbox of its writes), the inbound
// streams its peer's reship workers add to, and the apply stream its
// collect workers hand accepted writes to (transport/redis); stream
// entries carry batches of writes, so the entry counts it prints are below
// the write counts. It writes in both datacenters at once, sometimes to
// the same keys, waits until every write is applied everywhere, and checks
// that from the processors' own state; it exits non-zero when they do not
// converge in time.
//
// The streams are the durable outbox of every write, so each Redis must
// keep an append-only file: appendonly yes, appendfsync everysec (or
// always to survive power loss); scripts/redis.sh starts its servers so,
// and the Nodes log an error at start when a server does not (see
// docs/redis.md).
//
//	go run ./examples/redis-mq -unicom-redis 127.0.0.1:6379 -telecom-redis 127.0.0.1:6380 -n 1000
//
// Its keys start with "{dcsync:" (transport/redis's default prefix): give
// it Redis servers, or databases, of its own. It is a self-contained
// program: copy it into a module of your own that requires
// github.com/dcsync/dcsync, and it runs the same.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

var (
	datacenters = []string{"unicom", "telecom"}
	peerOf      = map[string]string{"unicom": "telecom", "telecom": "unicom"}
)

type options struct {
	redis   map[string]string // datacenter -> Redis host:port
	writes  int               // per datacenter
	timeout time.Duration     // for convergence
}

func main() {
	o := options{redis: map[string]string{}}
	for i, dc := range datacenters {
		def := fmt.Sprintf("127.0.0.1:%d", 6379+i)
		if env := os.Getenv(envName(dc)); env != "" {
			def = env
		}
		flag.Func(dc+"-redis", dc+"'s Redis host:port (env "+envName(dc)+"; default "+def+")",
			func(s string) error { o.redis[dc] = s; return nil })
		o.redis[dc] = def
	}
	flag.IntVar(&o.writes, "n", 1000, "writes per datacenter")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for convergence")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "redis-mq:", err)
		os.Exit(1)
	}
}

// envName is the environment variable that names dc's Redis.
func envName(dc string) string { return "REDIS_MQ_" + strings.ToUpper(dc) + "_REDIS" }

// quiet keeps the library's warnings (a stalled hop, a dead letter) on
// stderr and out of the report.
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// dc is one datacenter: its Redis, its Node and Syncer, its state.
type dc struct {
	client *goredis.Client
	node   *dcredis.Node
	syncer *dcsync.Syncer
	store  *store
}

func run(ctx context.Context, out io.Writer, o options) error {
	audit := memaudit.New(0) // one log for both, as one Elasticsearch cluster would be
	dcs := map[string]*dc{}
	for _, name := range datacenters {
		client := goredis.NewClient(&goredis.Options{Addr: o.redis[name]})
		defer client.Close()
		if err := client.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("%s: redis at %s: %w", name, o.redis[name], err)
		}
		dcs[name] = &dc{client: client, store: newStore()}
	}

	// What main() of each datacenter's service does: a Node on its own
	// Redis, reaching its peer's; a Syncer wired by it; the Node's workers.
	runCtx, stop := context.WithCancel(ctx)
	var workers sync.WaitGroup
	// On the way out the workers finish the batches under way and return,
	// then the Syncers close.
	defer func() {
		stop()
		workers.Wait()
		for _, d := range dcs {
			if d.syncer != nil {
				d.syncer.Close()
			}
		}
	}()
	for _, name := range datacenters {
		d, peer := dcs[name], peerOf[name]
		node, err := dcredis.NewNode(dcredis.NodeConfig{DC: name, Client: d.client,
			Peers: map[string]goredis.UniversalClient{peer: dcs[peer].client}, Logger: quiet})
		if err != nil {
			return err
		}
		syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: d.store, Audit: audit, Logger: quiet}))
		if err != nil {
			return err
		}
		d.node, d.syncer = node, syncer
		workers.Go(func() { _ = node.Run(runCtx, syncer) })
	}

	// Write in both datacenters at once, sometimes to the same keys.
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for name, d := range dcs {
		g.Go(func() error {
			for i := range o.writes {
				req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set", Payload: fmt.Appendf(nil, "%s-%d", name, i)}
				if err := d.syncer.Write(gctx, req); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	written := 2 * o.writes
	fmt.Fprintf(out, "wrote %d writes in each of %v in %v\n", o.writes, datacenters, time.Since(began).Round(time.Millisecond))

	// Wait until every write is applied in every datacenter.
	deadline := time.Now().Add(o.timeout)
	n := present(dcs)
	for n < written && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = present(dcs)
	}
	fmt.Fprintf(out, "replicated in %v\n", time.Since(began).Round(time.Millisecond))
	for _, d := range dcs {
		if err := d.syncer.Flush(ctx); err != nil {
			return err
		}
	}
	printCounts(out, audit)
	for _, name := range datacenters {
		st := dcs[name].node.Stats()
		fmt.Fprintf(out, "  %-8s streams: %d entries read, %d acknowledged, %d claimed, %d dead-lettered\n",
			name, st.Read, st.Acked, st.Claimed, st.DeadLettered)
	}
	fmt.Fprintf(out, "values agree on %d/%d keys\n", agree(dcs), dcs[datacenters[0]].store.Keys())
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, written)
	if n != written {
		return fmt.Errorf("not converged within %v: %d of %d writes missing somewhere", o.timeout, written-n, written)
	}
	return nil
}

// agree counts the keys whose winning write is the same everywhere.
func agree(dcs map[string]*dc) int {
	a, b := dcs[datacenters[0]].store.Winners(), dcs[datacenters[1]].store.Winners()
	n := 0
	for k, id := range a {
		if b[k] == id {
			n++
		}
	}
	return n
}

// printCounts prints how many records each stage logged, per datacenter and
// outcome.
func printCounts(out io.Writer, audit *memaudit.Log) {
	var lines []string
	for k, n := range audit.Counts() {
		if n > 0 {
			lines = append(lines, fmt.Sprintf("  %-8s %-8s %-6s %6d", k.DC, k.Stage, k.Status, n))
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
}

// store stands in for a datacenter's database: last writer wins per key,
// by (Version, Origin), so the datacenters converge whatever the order of
// delivery.
type store struct {
	mu      sync.Mutex
	values  map[string]*dcsync.Request // key -> winning write
	applied map[string]bool            // request IDs applied
}

func newStore() *store {
	return &store{values: map[string]*dcsync.Request{}, applied: map[string]bool{}}
}

// Process implements dcsync.Processor.
func (s *store) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.values[req.Key]; cur == nil || req.Newer(cur.Version, cur.Origin) {
		s.values[req.Key] = req
	}
	s.applied[req.ID] = true
	return nil
}

// Keys returns how many keys hold a value.
func (s *store) Keys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

// Winners returns the ID of the winning write of every key.
func (s *store) Winners() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.values))
	for k, r := range s.values {
		out[k] = r.ID
	}
	return out
}

// present counts the writes every datacenter has applied.
func present(dcs map[string]*dc) int {
	seen := map[string]int{}
	for _, d := range dcs {
		d.store.mu.Lock()
		for id := range d.store.applied {
			seen[id]++
		}
		d.store.mu.Unlock()
	}
	n := 0
	for _, c := range seen {
		if c == len(dcs) {
			n++
		}
	}
	return n
}
