// Command kafka runs two datacenters, unicom and telecom, over Kafka: each
// has its own Kafka cluster, holding its outbound topic (the durable
// outbox of its writes: Write returns once the brokers have a write), the
// inbound topic its peer's reship consumers produce to, and the apply
// topic its collect consumers hand accepted writes to (transport/kafka).
// It writes in both datacenters at once, half of the keys on both sides,
// waits until every write is applied everywhere and both datacenters hold
// the same value for every key, and exits non-zero when they do not
// converge in time.
//
//	scripts/kafka.sh start   # prints DCSYNC_KAFKA_BROKERS_A and _B
//	go run ./examples/kafka -unicom-brokers 127.0.0.1:19092 -telecom-brokers 127.0.0.1:19094 -n 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/transport/kafka"
)

type options struct {
	brokers map[string]string // datacenter -> its brokers, comma-separated
	writes  int               // per datacenter
	prefix  string            // of topics and groups
	timeout time.Duration     // for convergence
}

var datacenters = []string{"unicom", "telecom"}

func main() {
	o := options{brokers: map[string]string{
		"unicom":  or(os.Getenv("DCSYNC_KAFKA_BROKERS_A"), "127.0.0.1:9092"),
		"telecom": or(os.Getenv("DCSYNC_KAFKA_BROKERS_B"), "127.0.0.1:9093"),
	}}
	for _, dc := range datacenters {
		flag.Func(dc+"-brokers", dc+"'s Kafka brokers, comma-separated (default "+o.brokers[dc]+")",
			func(s string) error { o.brokers[dc] = s; return nil })
	}
	flag.IntVar(&o.writes, "n", 1000, "writes per datacenter")
	flag.StringVar(&o.prefix, "prefix", fmt.Sprintf("example-%d", time.Now().UnixNano()), "topic and group prefix")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait for convergence")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "kafka:", err)
		os.Exit(1)
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// store is a datacenter's state: the newest write of each key
// (last writer wins, by version), as a database with versioned rows
// would keep it.
type store struct {
	mu   sync.Mutex
	rows map[string]*dcsync.Request
	ids  map[string]bool // every write applied
}

func (s *store) Process(_ context.Context, r *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[r.ID] = true
	if cur := s.rows[r.Key]; cur == nil || r.Newer(cur.Version, cur.Origin) {
		s.rows[r.Key] = r
	}
	return nil
}

// state returns how many writes were applied and the winning write's ID
// of each key.
func (s *store) state() (int, map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := make(map[string]string, len(s.rows))
	for k, r := range s.rows {
		w[k] = r.ID
	}
	return len(s.ids), w
}

// quiet keeps the library's warnings (a stalled hop, a dead letter) on
// stderr and out of the report.
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

type dc struct {
	node   *kafka.Node
	syncer *dcsync.Syncer
	store  *store
}

func run(ctx context.Context, out io.Writer, o options) error {
	// What main() of each datacenter's service does: a Node on its own
	// cluster, reaching its peer's; a Syncer wired by it; the Node's
	// consumers.
	runCtx, stop := context.WithCancel(ctx)
	var workers sync.WaitGroup
	dcs := map[string]*dc{}
	defer func() { // consumers first, then the Syncers, then the producers
		stop()
		workers.Wait()
		for _, d := range dcs {
			d.syncer.Close()
			d.node.Close()
		}
	}()
	for i, name := range datacenters {
		peer := datacenters[1-i]
		node, err := kafka.NewNode(kafka.NodeConfig{DC: name, Brokers: strings.Split(o.brokers[name], ","),
			Peers: map[string][]string{peer: strings.Split(o.brokers[peer], ",")}, Prefix: o.prefix, Logger: quiet})
		if err != nil {
			return err
		}
		st := &store{rows: map[string]*dcsync.Request{}, ids: map[string]bool{}}
		syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: st, Logger: quiet}))
		if err != nil {
			node.Close()
			return err
		}
		if err := node.Setup(ctx); err != nil {
			syncer.Close()
			node.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		dcs[name] = &dc{node: node, syncer: syncer, store: st}
		workers.Go(func() { _ = node.Run(runCtx, syncer) })
	}

	// Write in both datacenters at once; keys shared-* on both sides.
	began := time.Now()
	errs := make(chan error, len(datacenters)*8)
	var writers sync.WaitGroup
	for _, name := range datacenters {
		for w := range 8 {
			writers.Go(func() {
				for i := w; i < o.writes; i += 8 {
					key := fmt.Sprintf("%s-%d", name, i)
					if i%2 == 0 {
						key = fmt.Sprintf("shared-%d", i)
					}
					req := &dcsync.Request{Key: key, Op: "set", Payload: fmt.Appendf(nil, "%s wrote %d", name, i)}
					if err := dcs[name].syncer.Write(ctx, req); err != nil {
						errs <- fmt.Errorf("%s: %w", name, err)
						return
					}
				}
			})
		}
	}
	writers.Wait()
	close(errs)
	if err := errors.Join(func() (all []error) {
		for err := range errs {
			all = append(all, err)
		}
		return all
	}()...); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d writes in each of %v in %v\n", o.writes, datacenters, time.Since(began).Round(time.Millisecond))

	// Wait until every write is applied everywhere, and the datacenters
	// agree on every key.
	want := len(datacenters) * o.writes
	deadline := time.Now().Add(o.timeout)
	for {
		nu, wu := dcs["unicom"].store.state()
		nt, wt := dcs["telecom"].store.state()
		if nu == want && nt == want && maps.Equal(wu, wt) {
			fmt.Fprintf(out, "replicated in %v: %d writes applied in each datacenter, %d keys, same winner for every key\n",
				time.Since(began).Round(time.Millisecond), want, len(wu))
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not converged within %v: unicom applied %d, telecom %d of %d", o.timeout, nu, nt, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range datacenters {
		st := dcs[name].node.Stats()
		fmt.Fprintf(out, "  %-8s records: %d read, %d committed, %d dead-lettered\n", name, st.Read, st.Committed, st.DeadLettered)
	}
	return nil
}
