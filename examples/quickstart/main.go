// Command quickstart runs two datacenters, unicom and telecom, in one
// process on dcsync's embedded defaults: the memory transport with injected
// faults and the memory audit log. It writes in both, prints what each stage
// recorded, lets the reconcilers repair what the faults broke, and checks
// from the processors' own state that every write reached every datacenter.
//
//	go run ./examples/quickstart -n 1000
//
// With -status 127.0.0.1:8080 it also serves each datacenter's status page,
// Prometheus metrics and readiness while it runs, and prints where; -hold
// keeps them up after the run until interrupted.
//
// It is a self-contained program: copy it into a module of your own that
// requires github.com/dcsync/dcsync, and it runs the same.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/admin"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/metrics/prom"
	"github.com/dcsync/dcsync/monitor"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// options are the run's size, seed and fault rates.
type options struct {
	writes    int     // per datacenter
	seed      uint64  // of the fault schedule and of the database's failures
	sendFail  float64 // share of deliveries that fail
	applyFail float64 // share of telecom's applies of unicom's writes that fail
	status    string  // address of the status pages; empty serves none
	hold      bool    // with status: keep serving after the run until interrupted
}

func main() {
	var o options
	flag.IntVar(&o.writes, "n", 1000, "writes per datacenter")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the fault schedule")
	flag.Float64Var(&o.sendFail, "send-fail", 0.2, "share of deliveries that fail")
	flag.Float64Var(&o.applyFail, "apply-fail", 0.1, "share of telecom's applies that fail")
	flag.StringVar(&o.status, "status", "", "serve each datacenter's status page, metrics and readiness at this `address` (e.g. 127.0.0.1:8080)")
	flag.BoolVar(&o.hold, "hold", false, "with -status: keep serving after the run until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// peerOf maps each datacenter to the other.
var peerOf = map[string]string{"unicom": "telecom", "telecom": "unicom"}

// quiet drops the library's log lines, so the output shows only the counts;
// a service passes its own logger.
var quiet = slog.New(slog.DiscardHandler)

func run(ctx context.Context, out io.Writer, o options) error {
	// The links between the datacenters fail, lose acknowledgements,
	// duplicate and reorder batches.
	network := memtransport.NewNetwork(o.seed)
	network.SetFaultsBetween(memtransport.Faults{Fail: o.sendFail, DropAck: 0.05, Duplicate: 0.1, Reorder: 0.3},
		"unicom", "telecom")
	// One audit log for both, as they would share one Elasticsearch cluster.
	audit := memaudit.New(0)

	dbs := map[string]*database{}
	syncers := map[string]*dcsync.Syncer{}
	monitors := map[string]*monitor.Monitor{}
	for dc, peer := range peerOf {
		dbs[dc] = newDatabase(dc, o.seed)
		monitors[dc] = monitor.New(dc, []string{peer})
		s, err := dcsync.New(dcsync.Config{
			DC:        dc,
			Observer:  monitors[dc],
			Peers:     map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Processor: dbs[dc],
			Audit:     audit,
			// One retry, then the write is left to the reconciler: fast
			// failure keeps the queues short while a link is bad.
			Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 2}},
			Logger:   quiet,
		})
		if err != nil {
			return err
		}
		defer s.Close()
		network.Attach(dc, s.Collector())
		monitors[dc].AddSource(monitor.SyncerSource(s))
		syncers[dc] = s
	}
	dbs["telecom"].failRate = o.applyFail
	if o.status != "" {
		stopServing, err := serveStatus(o.status, out, monitors)
		if err != nil {
			return err
		}
		defer stopServing()
	}

	// Write in both datacenters at once, sometimes to the same keys.
	g, gctx := errgroup.WithContext(ctx)
	for dc, s := range syncers {
		g.Go(func() error {
			for i := range o.writes {
				req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set", Payload: fmt.Appendf(nil, "%s-%d", dc, i)}
				if err := s.Write(gctx, req); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := flush(ctx, syncers); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d writes in each of unicom and telecom; before reconciliation:\n", o.writes)
	printCounts(out, audit)
	fmt.Fprintf(out, "present in every datacenter: %d/%d\n", present(dbs), 2*o.writes)

	// One reconciler per datacenter repairs its own writes, from the trails
	// in the log. The faults stay: it retries with backoff until each
	// delivery succeeds.
	for _, dc := range []string{"unicom", "telecom"} {
		peer := peerOf[dc]
		rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{
			DC:       dc,
			Peers:    map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Audit:    audit,
			Observer: monitors[dc],
			Grace:    -1, // everything written is done by now
			Backoff:  dcsync.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 8},
			Logger:   quiet,
		})
		if err != nil {
			return err
		}
		for pass := 1; pass <= 10; pass++ {
			rep, err := rec.RunOnce(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "reconcile %s pass %d: scanned %d, complete %d, repaired %d, failing %d\n",
				dc, pass, rep.Scanned, rep.Complete, rep.Repaired, rep.Failing)
			// The next pass, and the count below, must see this pass's
			// deliveries and their records.
			if err := flush(ctx, syncers); err != nil {
				return err
			}
			if rep.Failing == 0 {
				break
			}
		}
	}
	n := present(dbs)
	fmt.Fprintf(out, "converged: %d/%d writes present in every datacenter\n", n, 2*o.writes)
	if n != 2*o.writes {
		return fmt.Errorf("not converged: %d of %d writes missing somewhere", 2*o.writes-n, 2*o.writes)
	}
	if o.status != "" && o.hold {
		fmt.Fprintln(out, "serving the status pages until interrupted (Ctrl-C)")
		<-ctx.Done()
	}
	return nil
}

// serveStatus serves, for each datacenter, what an operator looks at: the
// status page, Prometheus metrics and readiness, under /<dc>/ on addr.
// It prints where to look and returns a function that stops serving.
func serveStatus(addr string, out io.Writer, monitors map[string]*monitor.Monitor) (func(), error) {
	mux := http.NewServeMux()
	for dc, mon := range monitors {
		checker, err := health.New(health.Config{Monitor: mon})
		if err != nil {
			return nil, err
		}
		reg := prometheus.NewRegistry()
		if err := reg.Register(prom.New(mon, prom.Options{})); err != nil {
			return nil, err
		}
		prefix := "/" + dc
		mux.Handle(prefix+"/status/", http.StripPrefix(prefix+"/status", admin.Handler(admin.Config{Monitor: mon, Health: checker})))
		mux.Handle(prefix+"/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.Handle(prefix+"/readyz", checker.Ready())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	for _, dc := range []string{"unicom", "telecom"} {
		base := "http://" + ln.Addr().String() + "/" + dc
		fmt.Fprintf(out, "status page: %s/status/  (metrics %s/metrics, readiness %s/readyz)\n", base, base, base)
	}
	return func() { srv.Close() }, nil
}

// flush waits until the syncers have sent what they queued and handed
// every record to the audit log.
func flush(ctx context.Context, syncers map[string]*dcsync.Syncer) error {
	for _, s := range syncers {
		if err := s.Flush(ctx); err != nil {
			return err
		}
	}
	return nil
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
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
}

// database stands in for a datacenter's database and cache: last writer
// wins per key, by (Version, Origin), so it converges whatever the order of
// delivery. Its applies of the other datacenter's writes fail at failRate,
// like a flaky database.
type database struct {
	dc       string
	mu       sync.Mutex
	failRate float64
	rng      *rand.Rand
	values   map[string]*dcsync.Request // key -> winning write
	applied  map[string]bool            // request IDs applied
}

func newDatabase(dc string, seed uint64) *database {
	return &database{dc: dc, rng: rand.New(rand.NewPCG(seed, uint64(len(dc)))),
		values: map[string]*dcsync.Request{}, applied: map[string]bool{}}
}

// Process implements dcsync.Processor.
func (d *database) Process(_ context.Context, req *dcsync.Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.Origin != d.dc && d.rng.Float64() < d.failRate {
		return fmt.Errorf("%s: database timeout", d.dc)
	}
	if cur := d.values[req.Key]; cur == nil || req.Newer(cur.Version, cur.Origin) {
		d.values[req.Key] = req
	}
	d.applied[req.ID] = true
	return nil
}

// present counts the writes every database has applied.
func present(dbs map[string]*database) int {
	seen := map[string]int{}
	for _, d := range dbs {
		d.mu.Lock()
		for id := range d.applied {
			seen[id]++
		}
		d.mu.Unlock()
	}
	n := 0
	for _, c := range seen {
		if c == len(dbs) {
			n++
		}
	}
	return n
}
