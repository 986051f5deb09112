package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/hop"
)

// NodeConfig wires a Node. DC and Brokers are required; the zero value of
// every other field selects its documented default.
type NodeConfig struct {
	// DC names this datacenter, as in dcsync.Config.
	DC string
	// Brokers are seed brokers of this datacenter's Kafka cluster, which
	// holds its outbound, inbound, apply and dead-letter topics.
	Brokers []string
	// Peers are the seed brokers of the other datacenters' clusters, by
	// datacenter name: the reship workers produce this datacenter's writes
	// to their inbound topics.
	Peers map[string][]string
	// ClientOptions are added to the options of every franz-go client the
	// Node makes, after its own: TLS, SASL, a logger.
	ClientOptions []kgo.Opt
	// Prefix starts every topic and group name; default "dcsync".
	Prefix string
	// Partitions is how many partitions the topics the Node creates get;
	// default 4. Topics that exist are left as they are.
	Partitions int32
	// Replication is the replication factor of the topics the Node
	// creates; default -1, the broker's default.
	Replication int16
	// Consumer names this process to the brokers (the client ID of its
	// franz-go clients, in their logs and quotas); default "dcsync-" and
	// the host name.
	Consumer string
	// Workers is how many group consumers each hop runs in this process;
	// default 1. A hop never has more useful consumers, in all processes
	// together, than its topics have partitions.
	Workers int
	// BatchSize is the most records a worker polls and hands on at once
	// (to a stage of package hop); default
	// 1024. Larger batches cost the brokers fewer requests per write.
	// Keep it within the Syncer's Limits.MaxBatch.
	BatchSize int
	// Linger is how long a producer waits for more records before it sends
	// a partition's batch; default 0, none: records that come while a
	// produce is under way go together in the next one anyway.
	Linger time.Duration
	// Block is how long a fetch waits for FetchMinBytes of new records, and
	// so bounds how long Run takes to notice its end; default 500ms, at
	// least 10ms (franz-go's least fetch wait).
	Block time.Duration
	// FetchMinBytes is how many bytes of records a fetch waits for, up to
	// Block; default 1: records go on as soon as they are there. Larger
	// fetches cost the brokers less, but a fetch that waits waits at least
	// 10ms, which every hop then adds to the lag at low rates, and an idle
	// worker fetches every Block: Gather makes batches larger only under
	// load.
	FetchMinBytes int32
	// Gather is how long a worker lets records gather before it polls
	// again, under load only; default 5ms, negative for never. A worker
	// waits when its last poll brought 16 records or more, at a rate that
	// brings 16 in one Gather (3200 a second with 5ms), and did not fill
	// BatchSize (a backlog goes on at once). The brokers' CPU bounds the
	// path, and a fetch or produce costs it far more than a record in it:
	// waiting makes each hop's next fetch, produce and commit carry
	// Gather's worth more records (at 20,000 writes/s, 100 more): a write
	// costs the brokers about 40% less CPU, and the path carries 35% of a
	// lone producer's writes against 25% (medians, see BENCHMARKS.md),
	// for up to twice Gather of lag per hop under load (the wait, and the
	// fetch buffered before it). At 1000 writes/s no worker waits, and
	// the lag is as without it.
	Gather time.Duration
	// CommitInterval is how often a worker commits the offsets of the
	// records it has handed on; default 100ms. Offsets are committed only
	// past records handed on, so a longer interval means more records
	// handed on again after a crash (and dropped as duplicates), never
	// fewer delivered.
	CommitInterval time.Duration
	// SessionTimeout is how long the group coordinator waits for a
	// consumer that stopped heartbeating (a crashed process) before it
	// gives the consumer's partitions to the others; default 10s.
	SessionTimeout time.Duration
	// MaxAttempts is how many times a request is handled before it is
	// dead-lettered; default 5. Errors of an unavailable next hop (see
	// ErrUnavailable) do not count.
	MaxAttempts int
	// Backoff spaces the retries of requests; Attempts is not used.
	Backoff dcsync.Backoff
	// Logger receives what workers cannot return: outages, dead letters;
	// default slog.Default().
	Logger *slog.Logger
}

// minBlock is the least FetchMaxWait franz-go's clients accept: with less,
// a worker's client is refused and the hop never runs.
const minBlock = 10 * time.Millisecond

// Node is one datacenter's end of the Kafka wiring. It is the durable
// outbox of its datacenter's writes (the dcsync.Reship: once Reship
// returns, the write is in the outbound topic, acknowledged by all in-sync
// replicas), it provides the Senders that produce writes to the peers'
// inbound topics, its collect group produces collected writes to the
// apply topic, and Run runs the consumer groups that move records from one
// topic to the next:
//
//	Write ─▶ <dc>.outbound ─local group─▶ Processor
//	                       ─reship group per peer─▶ <peer>.inbound.<dc> ─collect group─▶ <peer>.apply ─apply group─▶ Processor
//
// Every hop commits a record's offset only once its request is in the
// next topic (or applied, or dead-lettered), so every hop is at least
// once; the collector's dedupe and a version-honouring Processor make the
// whole effectively once. Create it with NewNode and release it with
// Close.
type Node struct {
	cfg      NodeConfig
	local    *kgo.Client            // producer to this datacenter's cluster
	peers    map[string]*kgo.Client // producers to the peers' clusters
	outbound string
	apply    string
	dead     string

	setupMu sync.Mutex
	setup   atomic.Bool // the topics exist

	stats struct{ read, committed, deadLettered, retried, stalled atomic.Uint64 }
}

var _ dcsync.Reship = (*Node)(nil)

// NewNode returns the Node of cfg.DC. It connects to no broker yet.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.DC == "" || len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: NodeConfig needs DC and Brokers")
	}
	for name, seeds := range cfg.Peers {
		if name == cfg.DC || name == "" || len(seeds) == 0 {
			return nil, fmt.Errorf("kafka: invalid peer %q", name)
		}
	}
	cfg.Prefix = or(cfg.Prefix, "dcsync")
	if host, err := os.Hostname(); cfg.Consumer == "" && err == nil {
		cfg.Consumer = "dcsync-" + host
	}
	cfg.Consumer = or(cfg.Consumer, "dcsync")
	cfg.Partitions = or(cfg.Partitions, 4)
	cfg.Replication = or(cfg.Replication, -1)
	cfg.Workers = or(cfg.Workers, 1)
	cfg.BatchSize = or(cfg.BatchSize, 1024)
	cfg.Block = or(cfg.Block, 500*time.Millisecond)
	if cfg.Block < minBlock {
		return nil, fmt.Errorf("kafka: NodeConfig.Block %v is under %v, the least fetch wait franz-go takes", cfg.Block, minBlock)
	}
	cfg.Gather = or(cfg.Gather, 5*time.Millisecond)
	cfg.FetchMinBytes = or(cfg.FetchMinBytes, 1)
	cfg.CommitInterval = or(cfg.CommitInterval, 100*time.Millisecond)
	cfg.SessionTimeout = or(cfg.SessionTimeout, 10*time.Second)
	cfg.MaxAttempts = or(cfg.MaxAttempts, 5)
	cfg.Backoff.Initial = or(cfg.Backoff.Initial, 10*time.Millisecond)
	cfg.Backoff.Max = or(cfg.Backoff.Max, 2*time.Second)
	cfg.Logger = or(cfg.Logger, slog.Default())
	n := &Node{
		cfg:      cfg,
		peers:    make(map[string]*kgo.Client, len(cfg.Peers)),
		outbound: cfg.Prefix + "." + cfg.DC + ".outbound",
		apply:    cfg.Prefix + "." + cfg.DC + ".apply",
		dead:     cfg.Prefix + "." + cfg.DC + ".dead",
	}
	var err error
	if n.local, err = n.producer(cfg.Brokers); err != nil {
		return nil, err
	}
	for name, seeds := range cfg.Peers {
		if n.peers[name], err = n.producer(seeds); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// producer returns an idempotent producer, acks=all, to the cluster of
// seeds. A produce ends with its context even when its records are in
// flight (AllowIdempotentProduceCancellation), so that Write and the
// workers are bounded by their contexts while a broker is away; a record
// given up that way may still land, once more than its retry, which the
// collector's dedupe and the version-honouring Processor absorb.
func (n *Node) producer(seeds []string) (*kgo.Client, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ClientID(n.cfg.Consumer), kgo.ProducerBatchMaxBytes(4 << 20), kgo.ProducerLinger(n.cfg.Linger)}, n.cfg.ClientOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer to %v: %w", seeds, err)
	}
	return cl, nil
}

// Close closes the Node's producers. Call it after Run has returned and
// the Syncer is closed.
func (n *Node) Close() {
	if n.local != nil {
		n.local.Close()
	}
	for _, cl := range n.peers {
		cl.Close()
	}
}

// inbound returns the topic of dc's cluster that writes from origin
// arrive in. One topic per sender makes the sender known by where a record
// is, and lets Kafka ACLs allow each peer its own topic only.
func (n *Node) inbound(dc, origin string) string {
	return n.cfg.Prefix + "." + dc + ".inbound." + origin
}

// group returns the name of a consumer group on this datacenter's cluster.
func (n *Node) group(name string) string { return n.cfg.Prefix + "." + n.cfg.DC + "." + name }

// Wire returns cfg with this Node's parts installed: the peers' Senders
// and the Node as Reship (a dcsync.WriteAheadReship: Write returns once
// the write is in the outbound topic, and the local group applies it).
// DC is set when empty. cfg.Dedupe is left as
// given: with several processes per datacenter, give them one shared store
// (the in-memory default is per process).
func (n *Node) Wire(cfg dcsync.Config) dcsync.Config {
	cfg.DC = or(cfg.DC, n.cfg.DC)
	cfg.Peers = n.Senders()
	cfg.Reship = n
	return cfg
}

// Setup creates the topics this Node produces to and consumes from, on its
// own cluster and on the peers' (their inbound topics for this
// datacenter), unless they exist. Reship and Run call it; calling it first
// surfaces a broker that cannot be reached.
func (n *Node) Setup(ctx context.Context) error {
	if n.setup.Load() {
		return nil
	}
	n.setupMu.Lock()
	defer n.setupMu.Unlock()
	if n.setup.Load() {
		return nil
	}
	topics := []string{n.outbound, n.apply, n.dead}
	for peer := range n.cfg.Peers {
		topics = append(topics, n.inbound(n.cfg.DC, peer))
	}
	if err := n.create(ctx, n.local, topics...); err != nil {
		return err
	}
	for peer, cl := range n.peers {
		if err := n.create(ctx, cl, n.inbound(peer, n.cfg.DC)); err != nil {
			return err
		}
	}
	n.setup.Store(true)
	return nil
}

func (n *Node) create(ctx context.Context, cl *kgo.Client, topics ...string) error {
	res, err := kadm.NewClient(cl).CreateTopics(ctx, n.cfg.Partitions, n.cfg.Replication, nil, topics...)
	if err != nil {
		return fmt.Errorf("kafka: create topics %v: %w", topics, err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// Reship implements dcsync.Reship: it produces req to the outbound topic
// and returns once every in-sync replica has it. The Node is a
// dcsync.WriteAheadReship, so this is all Syncer.Write does: the local
// group applies the write here, and each peer's reship group ships it, so
// a write is applied anywhere only once it is durably queued for every
// datacenter. Records of concurrent calls go to the broker together.
func (n *Node) Reship(ctx context.Context, req *dcsync.Request) error {
	if err := n.Setup(ctx); err != nil {
		return err
	}
	if err := produce(ctx, n.local, n.outbound, []*dcsync.Request{req}); err != nil {
		return fmt.Errorf("kafka: produce %s to %s: %w", req.ID, n.outbound, err)
	}
	return nil
}

// WritesAhead makes the Node a dcsync.WriteAheadReship: the local group's
// workers apply the writes it takes.
func (n *Node) WritesAhead() {}

var _ dcsync.WriteAheadReship = (*Node)(nil)

// produce produces reqs to topic through cl and waits for the brokers'
// acknowledgements. It returns nil, a *dcsync.BatchError naming the
// requests that failed, or, when all failed alike, the error.
func produce(ctx context.Context, cl *kgo.Client, topic string, reqs []*dcsync.Request) error {
	recs := make([]*kgo.Record, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		r, err := record(topic, req)
		if err != nil {
			errs[i] = err
			continue
		}
		recs[i] = r
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	switch {
	case failed == 0:
		return nil
	case len(reqs) == 1:
		return errs[0]
	}
	return &dcsync.BatchError{Errs: errs}
}

// handOff produces collected writes to the apply topic, together: the
// collect hop's next hop.
func (n *Node) handOff(ctx context.Context, reqs []*dcsync.Request) []error {
	return hop.Errs(produce(ctx, n.local, n.apply, reqs), len(reqs))
}

// Senders returns, per peer, the dcsync.Sender that produces writes to the
// peer's inbound topic for this datacenter, for dcsync.Config.Peers.
func (n *Node) Senders() map[string]dcsync.Sender {
	senders := make(map[string]dcsync.Sender, len(n.peers))
	for peer, cl := range n.peers {
		senders[peer] = &Sender{client: cl, topic: n.inbound(peer, n.cfg.DC)}
	}
	return senders
}

// Sender produces batches of writes to a peer's inbound topic. Node.Senders
// makes them.
type Sender struct {
	client *kgo.Client
	topic  string
}

var _ dcsync.Sender = (*Sender)(nil)

// Send implements dcsync.Sender: it returns once the peer's in-sync
// replicas have every request, with an error wrapping the broker's when
// the whole batch failed, and a *dcsync.BatchError when only some did.
func (s *Sender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	if err := produce(ctx, s.client, s.topic, reqs); err != nil {
		return fmt.Errorf("kafka: produce %d requests to %s: %w", len(reqs), s.topic, err)
	}
	return nil
}

// Close implements dcsync.Sender. It does not close the client, which
// belongs to the Node.
func (s *Sender) Close() error { return nil }

// Stats counts what a Node's workers did since NewNode.
type Stats struct {
	Read         uint64 // records polled by the workers
	Committed    uint64 // records handed on, applied or dead-lettered, whose offsets are then committed
	DeadLettered uint64 // records produced to the dead-letter topic
	Retried      uint64 // requests handled again after a failure that counts an attempt
	Stalled      uint64 // batches held back because their next hop was unavailable
}

// Stats returns the counters since NewNode.
func (n *Node) Stats() Stats {
	c := &n.stats
	return Stats{Read: c.read.Load(), Committed: c.committed.Load(), DeadLettered: c.deadLettered.Load(),
		Retried: c.retried.Load(), Stalled: c.stalled.Load()}
}

// Run creates the topics (Setup) and runs the consumer groups of every hop
// that reads from this datacenter's cluster — local apply, reship to each
// peer, collect, apply — until ctx ends; then it leaves the groups and
// returns ctx's error. What a worker was handling when ctx ended stays
// uncommitted and is delivered again. s must be the Syncer built from
// Wire's Config. Several processes of one datacenter may run a Node each:
// the groups share the partitions among them. Close s only after Run has
// returned.
func (n *Node) Run(ctx context.Context, s *dcsync.Syncer) error {
	if s.DC() != n.cfg.DC {
		return fmt.Errorf("kafka: node of %s given the syncer of %s", n.cfg.DC, s.DC())
	}
	for {
		err := n.Setup(ctx)
		if err == nil {
			break
		}
		n.cfg.Logger.Warn("kafka: setup failed; retrying", "dc", n.cfg.DC, "err", err)
		if ctx.Err() != nil || !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
	var wg sync.WaitGroup
	for _, h := range n.hops(hop.Of(s)) {
		for i := range n.cfg.Workers {
			wg.Go(func() { n.work(ctx, h, i) })
		}
	}
	wg.Wait()
	return ctx.Err()
}

// hops returns the hops that read from this datacenter's cluster, each
// running one of st, the Syncer's stages, a batch at a time.
func (n *Node) hops(st hop.Stages) []*stage {
	apply := func(ctx context.Context, _ string, reqs []*dcsync.Request) []error { return st.Apply(ctx, reqs) }
	hs := []*stage{{name: "local", group: n.group("local"), topics: []string{n.outbound}, handle: apply}}
	var inbound []string
	from := map[string]string{}
	for peer := range n.cfg.Peers {
		hs = append(hs, &stage{name: "reship:" + peer, group: n.group("reship." + peer), topics: []string{n.outbound},
			handle: func(ctx context.Context, _ string, reqs []*dcsync.Request) []error {
				return st.Ship(ctx, peer, nil, reqs)
			},
			// Ship retried already; what it could not deliver waits for
			// the peer's cluster, however long it is away.
			stallAll: true,
		})
		t := n.inbound(n.cfg.DC, peer)
		inbound = append(inbound, t)
		from[t] = peer
	}
	if len(inbound) > 0 {
		hs = append(hs, &stage{name: "collect", group: n.group("collect"), topics: inbound, from: from,
			handle: func(ctx context.Context, from string, reqs []*dcsync.Request) []error {
				return st.Collect(ctx, from, reqs, nil, n.handOff)
			}})
	}
	hs = append(hs, &stage{name: "apply", group: n.group("apply"), topics: []string{n.apply}, handle: apply})
	return hs
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
