// Command dcsync-bench measures dcsync the same way over every transport
// and audit store, and in the same run measures what a user would build
// instead and the ceilings of the machine.
//
// Scenario: two datacenters on loopback, unicom and telecom. N writes of a
// payload size enter unicom with no-op processors; a write counts once
// telecom's processor has applied it. Every target runs two phases, each
// on fresh servers: full speed (Writers concurrent writers, until the peer
// has applied all N), and a fixed offered rate (replication lag, the time
// from Write to the peer's apply). Every payload carries its write time,
// so the peer's apply alone measures the lag, whatever carried it.
//
// Targets:
//
//	dcsync/<transport>[+elastic]  memory, http, http-journal (http writing ahead to package journal), grpc, redis, redis-cluster, kafka, kafka-nogather, kafka-fetch64k; audit log in memory or Elasticsearch
//	dcsync/memory-3dc             dcsync/memory with a third datacenter: unicom ships every write to two peers
//	watermill/redis               Watermill's Redis Streams pub/sub with a forwarder from A's Redis to B's
//	handrolled/http-post          one HTTP POST per write, net/http client to net/http server
//	ceiling/redis-xadd            redis-benchmark, pipelined XADD of the payload
//	ceiling/nethttp               a net/http handler that only reads the body, fed dcsync-sized batches
//	ceiling/grpc                  a client-streaming RPC that only receives dcsync-sized batches
//	mirrormaker2/kafka            Kafka's MirrorMaker 2 copying a topic from unicom's broker to telecom's (-mm2)
//	ceiling/kafka-produce         a franz-go producer alone, the Node's settings, dcsync's records to the peer's broker, writers waiting for acks
//	ceiling/kafka-produce-async   the same, every record handed to the client at once
//
// Usage:
//
//	cd bench && go run . -json results.json
//
// It prints a live progress line to stderr, a table to stdout at the end,
// and writes every figure to the -json file. Elasticsearch rows run when
// -elastic or DCSYNC_ELASTIC_URL gives a node.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
)

// Config sets up a run. The zero value of a field selects the default that
// flags document.
type Config struct {
	N          int           // writes per full-speed phase
	ElasticN   int           // writes per full-speed phase of the +elastic rows, which Elasticsearch's indexing bounds
	CeilingN   int           // writes' worth of work of the ceilings, which do N in a fraction of a second
	Payload    int           // bytes per write
	Writers    int           // concurrent writers
	Rate       int           // offered writes/s of the fixed-rate phase; negative skips the phase
	RateFor    time.Duration // length of the fixed-rate phases
	SustainFor time.Duration // length of each step of the +elastic rows' sustained phase; negative skips it
	Load       float64       // fraction of its sustained full speed at which a target's lag is measured too; negative skips
	Timeout    time.Duration // bound of one phase, writes and replication
	Only       []string      // run the targets whose name contains one of these; all when empty
	ElasticURL string        // Elasticsearch node for the +elastic rows; none when empty
	ProfileDir string        // when set, one CPU profile per target's full-speed phase
	HeapDir    string        // when set, one heap profile per target, at the end of its full-speed phase
	Progress   io.Writer     // live progress line; nil for none
	NoWarmES   bool          // skip the unmeasured phase that warms Elasticsearch up

	BatchSize int // dcsync Delivery.BatchSize; 0 for the library's default
	Workers   int // dcsync Delivery.Workers, and the batches in flight of the RPC ceilings; 0 for the default

	// The WAN phase: one-way delays (none: skipped), writes per full-speed
	// phase, runs, and length of its lag phases.
	WAN       []time.Duration
	WANN      int
	WANRuns   int
	WANLagFor time.Duration

	WatermillConsumers int    // subscribers per hop in the Watermill forwarder
	RedisServer        string // redis-server binary
	RedisBenchmark     string // redis-benchmark binary
	// RedisRewriteMinSize is the servers' auto-aof-rewrite-min-size; empty
	// for Redis's default (64mb).
	RedisRewriteMinSize string
	KafkaA, KafkaB      string // bootstrap brokers of unicom's and telecom's Kafka; the Kafka rows need both
	KafkaRun            string // scripts/kafka.sh's run directory, where the brokers' pids are
	MirrorMaker         bool   // run the mirrormaker2/kafka row, which starts a JVM per phase
}

func (c *Config) withDefaults() {
	c.N = or(c.N, 200_000)
	c.ElasticN = or(c.ElasticN, max(c.N/10, 1))
	c.CeilingN = or(c.CeilingN, 5*c.N)
	c.Payload = max(or(c.Payload, 256), stampSize)
	c.Writers = or(c.Writers, 64)
	c.Rate = or(c.Rate, 1000)
	c.RateFor = or(c.RateFor, 10*time.Second)
	c.SustainFor = or(c.SustainFor, time.Minute)
	c.Load = or(c.Load, 0.5)
	c.Timeout = or(c.Timeout, 5*time.Minute)
	c.WANN = or(c.WANN, 100_000)
	c.WANRuns = or(c.WANRuns, 3)
	c.WANLagFor = or(c.WANLagFor, 3*time.Second)
	c.WatermillConsumers = or(c.WatermillConsumers, 4)
	c.RedisServer = or(c.RedisServer, lookPath("DCSYNC_REDIS_SERVER", "redis-server"))
	c.RedisBenchmark = or(c.RedisBenchmark, lookPath("DCSYNC_REDIS_BENCHMARK", "redis-benchmark"))
	c.KafkaA = or(c.KafkaA, os.Getenv("DCSYNC_KAFKA_BROKERS_A"))
	c.KafkaB = or(c.KafkaB, os.Getenv("DCSYNC_KAFKA_BROKERS_B"))
	c.KafkaRun = or(c.KafkaRun, os.Getenv("DCSYNC_KAFKA_RUN"))
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func main() {
	var cfg Config
	var only, jsonPath, mdPath, wan string
	var short, quiet bool
	flag.IntVar(&cfg.N, "n", 200_000, "writes per full-speed phase")
	flag.IntVar(&cfg.ElasticN, "elastic-n", 0, "writes per full-speed phase of the +elastic rows (default n/10)")
	flag.IntVar(&cfg.CeilingN, "ceiling-n", 0, "writes' worth of work of the ceilings (default 5n)")
	flag.IntVar(&cfg.Payload, "payload", 256, "payload bytes per write (at least 24)")
	flag.IntVar(&cfg.Writers, "writers", 64, "concurrent writers")
	flag.IntVar(&cfg.Rate, "rate", 1000, "offered writes/s of the fixed-rate phase; -1 skips it")
	flag.DurationVar(&cfg.RateFor, "rate-for", 10*time.Second, "length of each fixed-rate phase")
	flag.DurationVar(&cfg.SustainFor, "sustain-for", time.Minute, "length of each step of the +elastic rows' sustained phase; negative skips it")
	flag.Float64Var(&cfg.Load, "load", 0.5, "also measure lag at this fraction of each target's sustained full speed (the rate its audit log kept up with, when lower); -1 skips it")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound of one phase")
	flag.StringVar(&only, "only", "", "comma-separated substrings: run only the targets whose name contains one")
	flag.StringVar(&cfg.ElasticURL, "elastic", os.Getenv("DCSYNC_ELASTIC_URL"), "Elasticsearch URL for the +elastic rows (default $DCSYNC_ELASTIC_URL)")
	flag.StringVar(&cfg.ProfileDir, "cpuprofile", "", "directory for one CPU profile per target (full-speed phase)")
	flag.StringVar(&cfg.HeapDir, "memprofile", "", "directory for one heap profile per target (end of the full-speed phase)")
	flag.IntVar(&cfg.BatchSize, "batch", 0, "dcsync Delivery.BatchSize (0: library default)")
	flag.IntVar(&cfg.Workers, "workers", 0, "dcsync Delivery.Workers, and batches in flight of the RPC ceilings (0: library default)")
	flag.StringVar(&cfg.RedisRewriteMinSize, "redis-rewrite-min-size", "",
		"auto-aof-rewrite-min-size of the redis-server processes (default Redis's, 64mb: a fresh server rewrites its append-only file every few seconds under load)")
	flag.IntVar(&cfg.WatermillConsumers, "watermill-consumers", 4, "subscribers per hop of the Watermill forwarder")
	flag.StringVar(&wan, "wan", "0,10ms,20ms,40ms", "one-way delays of the WAN phase, comma-separated; empty skips it")
	flag.IntVar(&cfg.WANN, "wan-n", 100_000, "writes per full-speed phase of the WAN phase")
	flag.IntVar(&cfg.WANRuns, "wan-runs", 3, "runs of the WAN phase, of which rows are medians")
	flag.DurationVar(&cfg.WANLagFor, "wan-lag-for", 3*time.Second, "length of each lag phase of the WAN phase")
	flag.StringVar(&cfg.KafkaA, "kafka-a", "", "unicom's Kafka brokers (default $DCSYNC_KAFKA_BROKERS_A)")
	flag.StringVar(&cfg.KafkaB, "kafka-b", "", "telecom's Kafka brokers (default $DCSYNC_KAFKA_BROKERS_B)")
	flag.BoolVar(&cfg.MirrorMaker, "mm2", false, "run the mirrormaker2/kafka row (Kafka's MirrorMaker 2, a JVM per phase)")
	flag.StringVar(&jsonPath, "json", "", "write the results as JSON to this file")
	flag.StringVar(&mdPath, "md", "", "write the table as Markdown to this file")
	flag.BoolVar(&short, "short", false, "a quick run: 2000 writes, 1s at 1000 writes/s")
	flag.BoolVar(&quiet, "q", false, "no progress line")
	flag.Parse()
	for _, d := range strings.Split(wan, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if d == "0" {
			d = "0s"
		}
		v, err := time.ParseDuration(d)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dcsync-bench: -wan:", err)
			os.Exit(2)
		}
		cfg.WAN = append(cfg.WAN, v)
	}
	if short {
		cfg.shorten()
	}
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	if !quiet {
		cfg.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintln(os.Stderr, "dcsync-bench:", err)
		os.Exit(1)
	}
	rep.WriteTable(os.Stdout)
	if err != nil { // interrupted: the table holds what ran
		fmt.Fprintln(os.Stderr, "dcsync-bench:", err)
		defer os.Exit(1)
	}
	if jsonPath != "" {
		if err := rep.WriteJSON(jsonPath); err != nil {
			fmt.Fprintln(os.Stderr, "dcsync-bench:", err)
			os.Exit(1)
		}
	}
	if mdPath != "" {
		var b strings.Builder
		rep.WriteMarkdown(&b)
		if err := os.WriteFile(mdPath, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "dcsync-bench:", err)
			os.Exit(1)
		}
	}
	if rep.Failed() {
		os.Exit(1)
	}
}

// shorten makes c a run of seconds, for tests and smoke checks.
func (c *Config) shorten() {
	c.N, c.ElasticN, c.Rate, c.RateFor, c.Timeout = 2000, 1000, 1000, time.Second, 30*time.Second
	c.WANN, c.WANRuns, c.WANLagFor = 2000, 1, time.Second
	if len(c.WAN) > 2 {
		c.WAN = []time.Duration{0, 20 * time.Millisecond}
	}
	c.Load = -1
	c.SustainFor = -1
	c.NoWarmES = true
}

// Run runs every selected target and returns the report. A target that
// fails is reported in its row. When ctx ends, Run returns the report of
// what ran and ctx's error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.withDefaults()
	for _, dir := range []string{cfg.ProfileDir, cfg.HeapDir} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	rep := newReport(&cfg)
	warmElastic := cfg.ElasticURL != "" && !cfg.NoWarmES
	for _, t := range targets(&cfg) {
		if !cfg.selects(t.name) {
			continue
		}
		if t.audit == elasticStore.name && warmElastic && t.needs(&cfg) == "" {
			// A fresh node compiles its hot paths and creates its first
			// indices on the first records it gets: one unmeasured phase
			// keeps that out of the first +elastic row.
			warmElastic = false
			if cfg.Progress != nil {
				fmt.Fprintln(cfg.Progress, "warming up Elasticsearch with an unmeasured phase of", t.name)
			}
			runPhase(ctx, &cfg, t, 0)
		}
		if ctx.Err() != nil {
			break
		}
		res := runTarget(ctx, &cfg, t)
		rep.Results = append(rep.Results, res)
		if cfg.Progress != nil {
			fmt.Fprintln(cfg.Progress, res.summary())
		}
	}
	if len(cfg.WAN) > 0 && ctx.Err() == nil {
		rep.WAN = runWAN(ctx, &cfg)
	}
	rep.finish()
	return rep, ctx.Err()
}

func (c *Config) selects(name string) bool {
	if len(c.Only) == 0 {
		return true
	}
	for _, s := range c.Only {
		if s != "" && strings.Contains(name, s) {
			return true
		}
	}
	return false
}
