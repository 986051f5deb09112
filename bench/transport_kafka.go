package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
	dckafka "github.com/dcsync/dcsync/transport/kafka"
)

// The Kafka rows run on the two brokers of scripts/kafka.sh (a JVM takes
// too long to start for a broker per phase): each phase uses topics of its
// own, deleted when it ends, and counts the brokers' CPU (their pids are
// in $DCSYNC_KAFKA_RUN).

func needKafka(cfg *Config) string {
	if cfg.KafkaA == "" || cfg.KafkaB == "" {
		return "no Kafka brokers (scripts/kafka.sh start sets DCSYNC_KAFKA_BROKERS_A and _B)"
	}
	return ""
}

// kafkaBrokers returns the seed brokers of dc.
func kafkaBrokers(cfg *Config, dc string) []string {
	if dc == origin {
		return strings.Split(cfg.KafkaA, ",")
	}
	return strings.Split(cfg.KafkaB, ",")
}

// kafkaPhase accounts for the brokers in e's figures, once, and returns a
// topic prefix no other phase uses, whose topics are deleted when the phase
// ends.
func kafkaPhase(e *env, once *sync.Once, prefix *string) string {
	once.Do(func() {
		*prefix = fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano())
		for _, dc := range []string{origin, peer} {
			b, err := os.ReadFile(filepath.Join(e.cfg.KafkaRun, dc, "pid"))
			pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || perr != nil {
				e.note(fmt.Sprintf("%s's Kafka broker's CPU not counted (DCSYNC_KAFKA_RUN names no pid)", dc))
				continue
			}
			e.addProcess(process{name: "kafka-" + dc, pid: pid, shared: true})
		}
		p := *prefix
		e.onClose(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, dc := range []string{origin, peer} {
				cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(e.cfg, dc)...))
				if err != nil {
					continue
				}
				adm := kadm.NewClient(cl)
				if topics, err := adm.ListTopics(ctx); err == nil {
					var mine []string
					for _, t := range topics.Names() {
						if strings.HasPrefix(t, p+".") {
							mine = append(mine, t)
						}
					}
					_, _ = adm.DeleteTopics(ctx, mine...)
				}
				cl.Close()
			}
		})
	})
	return *prefix
}

// kafkaWiring joins the Syncers with transport/kafka: each datacenter's
// Node on its own broker, on the library's defaults but for the fetch
// settings and Gather, when set.
type kafkaWiring struct {
	minBytes int32         // NodeConfig.FetchMinBytes
	block    time.Duration // NodeConfig.Block
	gather   time.Duration // NodeConfig.Gather

	once   sync.Once
	prefix string
	nodes  map[string]*dckafka.Node
	runCtx context.Context // of the Nodes' Run, ended by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *kafkaWiring) config(ctx context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	prefix := kafkaPhase(e, &w.once, &w.prefix)
	node, err := dckafka.NewNode(dckafka.NodeConfig{DC: cfg.DC, Brokers: kafkaBrokers(e.cfg, cfg.DC),
		Peers: map[string][]string{other: kafkaBrokers(e.cfg, other)}, Prefix: prefix,
		FetchMinBytes: w.minBytes, Block: w.block, Gather: w.gather, ClientOptions: []kgo.Opt{kgo.Dialer(e.wire.dial)}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return cfg, err
	}
	if w.nodes == nil {
		w.nodes = map[string]*dckafka.Node{}
	}
	w.nodes[cfg.DC] = node
	e.onClose(node.Close)
	if err := node.Setup(ctx); err != nil {
		return cfg, err
	}
	return node.Wire(cfg), nil
}

func (w *kafkaWiring) start(_ context.Context, _ *env, s *dcsync.Syncer) error {
	if w.cancel == nil {
		w.runCtx, w.cancel = context.WithCancel(context.Background())
	}
	node := w.nodes[s.DC()]
	w.wg.Go(func() { _ = node.Run(w.runCtx, s) })
	return nil
}

// stop ends the Nodes' consumers; the Syncers may close once Run returned.
func (w *kafkaWiring) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}

// The Kafka ceilings are what the brokers allow for dcsync's records: a
// franz-go producer alone, with the Node's producer settings (acks=all,
// idempotent, 4 MiB batches, no linger), producing the records dcsync's
// outbound topic gets (one encoded request each, keyed) to a topic of 4
// partitions on the peer's broker. ceiling/kafka-produce does it as
// Write does, from the run's writers, each waiting for its record's
// acknowledgement before the next; ceiling/kafka-produce-async hands the
// client every record at once, as fast as it batches them.
var (
	kafkaCeiling = target{name: "ceiling/kafka-produce", kind: kindCeiling, transport: "kafka", needs: needKafka,
		start: func(ctx context.Context, e *env) (system, error) { return startKafkaCeiling(ctx, e, false) }}
	kafkaAsyncCeiling = target{name: "ceiling/kafka-produce-async", kind: kindCeiling, transport: "kafka", needs: needKafka,
		start: func(ctx context.Context, e *env) (system, error) { return startKafkaCeiling(ctx, e, true) }}
)

type kafkaCeilingSystem struct {
	cl      *kgo.Client
	topic   string
	value   []byte
	writers int // 0: asynchronous
}

func startKafkaCeiling(ctx context.Context, e *env, async bool) (system, error) {
	var once sync.Once
	var prefix string
	topic := kafkaPhase(e, &once, &prefix) + ".ceiling"
	tr := newTracker(1)
	req := &dcsync.Request{ID: "0190f3c2-7d2a-7b3c-8e4f-123456789abc", Origin: origin, Key: "k0", Op: "set",
		Payload: tr.payload(0, e.cfg.Payload), Version: 1}
	value, err := wire.Encode(nil, []*dcsync.Request{req}, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(e.cfg, peer)...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowIdempotentProduceCancellation(), kgo.ProducerBatchMaxBytes(4<<20), kgo.ProducerLinger(0),
		kgo.Dialer(e.wire.dial))
	if err != nil {
		return nil, err
	}
	e.onClose(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 4, -1, nil, topic); err != nil {
		return nil, err
	}
	k := &kafkaCeilingSystem{cl: cl, topic: topic, value: value, writers: e.cfg.Writers}
	if async {
		k.writers = 0
	}
	return k, nil
}

func (k *kafkaCeilingSystem) record(i int) *kgo.Record {
	return &kgo.Record{Topic: k.topic, Key: []byte("k" + strconv.Itoa(i%4096)), Value: k.value}
}

func (k *kafkaCeilingSystem) drive(ctx context.Context, n int, done *atomic.Int64) (float64, error) {
	var first atomic.Pointer[error]
	fail := func(err error) { first.CompareAndSwap(nil, &err) }
	var wg sync.WaitGroup
	if k.writers > 0 {
		var next atomic.Int64
		for range k.writers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil && first.Load() == nil; i = int(next.Add(1) - 1) {
					if err := k.cl.ProduceSync(ctx, k.record(i)).FirstErr(); err != nil {
						fail(err)
						return
					}
					done.Add(1)
				}
			})
		}
	} else {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			wg.Add(1)
			k.cl.Produce(ctx, k.record(i), func(_ *kgo.Record, err error) {
				if err != nil {
					fail(err)
				} else {
					done.Add(1)
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return 0, *err
	}
	return 0, ctx.Err()
}

func (k *kafkaCeilingSystem) close() error { return nil }
