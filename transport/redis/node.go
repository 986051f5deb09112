package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/hop"
)

// NodeConfig wires a Node. DC and Client are required; the zero value of
// every other field selects its documented default.
type NodeConfig struct {
	// DC names this datacenter, as in dcsync.Config.
	DC string
	// Client reaches this datacenter's Redis, which holds its outbound,
	// inbound, apply and dead-letter streams. Up to Workers × (2 × peers + 1)
	// of its connections block in XREADGROUP at a time, so its PoolSize
	// must be larger (go-redis's default is 10 per CPU).
	Client goredis.UniversalClient
	// Peers reach the other datacenters' Redis servers by datacenter name:
	// the reship workers add this datacenter's writes to their inbound
	// streams. Each peer has a consumer group, named after it, on the
	// outbound stream, which is trimmed only past what every group has
	// acknowledged: when a peer leaves for good, destroy its group
	// (XGROUP DESTROY {<Prefix>:<DC>}:outbound <peer>). Across a WAN each reship
	// worker keeps up to 8 batches in flight to a peer, each on a
	// connection of the peer's client: give it a PoolSize of 8 × Workers
	// or more (go-redis's default, 10 per CPU, fits 2 Workers on 2 CPUs).
	// Run opens and handshakes those connections ahead, and times the
	// round trip, with PINGs: the peer's ACL must allow PING.
	Peers map[string]goredis.UniversalClient
	// Prefix starts every key; default "dcsync".
	Prefix string
	// Consumer names this process in the consumer groups, and must differ
	// between processes; default host name, process ID and a random suffix.
	Consumer string
	// Workers is how many consumers each hop runs per stream; default 2.
	Workers int
	// BatchSize is the most requests a stream entry carries, and how many
	// a worker hands on at once to a stage of package hop;
	// default 256. A worker reads up to BatchSize/8 entries at once (at
	// least one); a reship worker reads up to BatchSize entries and sends
	// all it read to the peer in one round trip, as entries of
	// BatchSize, with up to 8 such batches in flight across a WAN. Keep it within the Syncer's
	// Limits.MaxBatch.
	BatchSize int
	// Concurrency is how many requests of a batch an apply worker passes
	// to a Processor that is not a dcsync.BatchProcessor at once; default
	// 64. Requests with the same Key are applied one after the other, in
	// stream order. A BatchProcessor gets each batch in one call.
	Concurrency int
	// Block is how long a worker waits in XREADGROUP for new entries, and
	// so bounds how long Run takes to return; default 1s.
	Block time.Duration
	// ClaimIdle is how long an entry stays pending before another worker
	// claims it (XAUTOCLAIM), presuming its consumer died or failed;
	// default 30s.
	ClaimIdle time.Duration
	// MaxAttempts is how many deliveries an entry gets before it is
	// dead-lettered; default 5. Errors of an unavailable next hop (see
	// ErrUnavailable) do not count.
	MaxAttempts int
	// TrimInterval is how often acknowledged entries are trimmed from the
	// streams; default 1s.
	TrimInterval time.Duration
	// Backoff spaces the retries of entries whose next hop is unavailable;
	// they are retried until it is back, so Attempts is not used.
	Backoff dcsync.Backoff
	// Dedupe configures the store Wire installs; Prefix defaults to
	// "<Prefix>:<DC>:dedupe:".
	Dedupe DedupeOptions
	// Logger receives what workers cannot return: outages, dead letters;
	// default slog.Default().
	Logger *slog.Logger
	// Replicas, when positive, makes Write (through the outbound stream)
	// and the reship hop (through a peer's inbound stream) wait until that
	// many replicas of the server they added to have the entries (WAIT),
	// before Write returns or the entries they came from are
	// acknowledged. A failover (Redis Cluster, Sentinel) then loses
	// nothing that was acknowledged, but while fewer replicas answer,
	// Writes fail with ErrUnreplicated and the reship hop holds its
	// entries. Default 0: replication is asynchronous, and a failover
	// may lose the last entries a master took. It needs a
	// *goredis.Client or a *goredis.ClusterClient.
	Replicas int
	// ReplicaTimeout bounds a wait for Replicas; default 500ms. Keep it
	// under the clients' ReadTimeout.
	ReplicaTimeout time.Duration
}

// Node is one datacenter's end of the Redis Streams wiring. It is the
// durable outbox of its datacenter's writes (the dcsync.Reship: once Reship
// returns, the write is in the outbound stream), it provides the Senders
// that add writes to the peers' inbound streams and the Handoff that adds
// writes to the apply stream, and Run runs the workers that move
// entries from one stream to the next:
//
//	Write ─▶ <dc>:outbound ─local workers─▶ Processor
//	                       ─reship workers─▶ <peer>:inbound:<dc> ─collect workers─▶ <peer>:apply ─apply workers─▶ Processor
//
// Entries carry batches of requests. Every hop reads with a consumer group
// and acknowledges an entry only once its requests are durably in the next
// stream (or applied, or dead-lettered), so every hop is at least once;
// the collector's dedupe and a version-honouring Processor make the whole
// effectively once. Create it with NewNode.
type Node struct {
	cfg      NodeConfig
	out      outbox
	dedupe   *Dedupe
	outbound string
	apply    string
	dead     string
	// staleConsumer is how long a consumer with no pending entries stays
	// idle before the janitor removes it from its group.
	staleConsumer time.Duration
	// blockInPipeline says a blocking read fits in the client's
	// ReadTimeout, which bounds the wait for a pipeline's replies.
	blockInPipeline bool

	stats struct{ read, acked, claimed, reread, deadLettered, stalled, trimmed atomic.Uint64 }
	// links are the round trips to the peers, by name.
	links map[string]*link
	// overlapped counts the reship batches launched while another of their
	// worker was in flight (see flights).
	overlapped atomic.Uint64
}

var _ dcsync.Reship = (*Node)(nil)

// NewNode returns the Node of cfg.DC.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.DC == "" || cfg.Client == nil {
		return nil, errors.New("redis: NodeConfig needs DC and Client")
	}
	for name, c := range cfg.Peers {
		if name == cfg.DC || name == "" || c == nil {
			return nil, fmt.Errorf("redis: invalid peer %q", name)
		}
		if cfg.Replicas > 0 && !canWait(c) {
			return nil, fmt.Errorf("redis: NodeConfig.Replicas needs a *goredis.Client or *goredis.ClusterClient, not a %T (peer %q)", c, name)
		}
	}
	if cfg.Replicas > 0 && !canWait(cfg.Client) {
		return nil, fmt.Errorf("redis: NodeConfig.Replicas needs a *goredis.Client or *goredis.ClusterClient, not a %T", cfg.Client)
	}
	cfg.Prefix = or(cfg.Prefix, "dcsync")
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Consumer = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.N(1<<16))
	}
	cfg.Workers = or(cfg.Workers, 2)
	cfg.BatchSize = or(cfg.BatchSize, 256)
	cfg.Concurrency = or(cfg.Concurrency, 64)
	cfg.Block = or(cfg.Block, time.Second)
	cfg.ClaimIdle = or(cfg.ClaimIdle, 30*time.Second)
	cfg.MaxAttempts = or(cfg.MaxAttempts, 5)
	cfg.TrimInterval = or(cfg.TrimInterval, time.Second)
	cfg.Backoff.Initial = or(cfg.Backoff.Initial, 10*time.Millisecond)
	cfg.Backoff.Max = or(cfg.Backoff.Max, 5*time.Second)
	cfg.Dedupe.Prefix = or(cfg.Dedupe.Prefix, Key(cfg.Prefix, cfg.DC, "dedupe:"))
	cfg.Logger = or(cfg.Logger, slog.Default())
	cfg.ReplicaTimeout = or(cfg.ReplicaTimeout, defaultReplicaTimeout)
	n := &Node{
		cfg:           cfg,
		dedupe:        NewDedupe(cfg.Client, cfg.Dedupe),
		outbound:      Key(cfg.Prefix, cfg.DC, "outbound"),
		apply:         Key(cfg.Prefix, cfg.DC, "apply"),
		dead:          Key(cfg.Prefix, cfg.DC, "dead"),
		staleConsumer: time.Hour,
		links:         make(map[string]*link, len(cfg.Peers)),
	}
	for peer := range cfg.Peers {
		n.links[peer] = new(link)
	}
	n.out.n = n
	rt := readTimeout(cfg.Client)
	n.blockInPipeline = rt < 0 || 2*cfg.Block <= rt
	return n, nil
}

// inbound returns the stream of dc's Redis that writes from origin arrive
// in. One stream per sender makes the sender known by where an entry is,
// and lets Redis ACLs allow each peer its own stream only.
func (n *Node) inbound(dc, origin string) string {
	return Key(n.cfg.Prefix, dc, "inbound:"+origin)
}

// Key returns the Redis key of name ("outbound", "apply", "dead",
// "leader", ...) among the keys of datacenter dc under prefix (the
// NodeConfig's Prefix): "{<prefix>:<dc>}:<name>", for tools that read them
// without a Node. The braces are a Redis Cluster hash tag: every key of a
// datacenter is in one hash slot, so the scripts and transactions that
// span several of them (a handoff adds to the apply stream and marks the
// dedupe store; a worker acknowledges an entry, records failures and
// dead-letters in one MULTI) run on a cluster as on one server.
func Key(prefix, dc, name string) string { return "{" + prefix + ":" + dc + "}:" + name }

// readTimeout returns the ReadTimeout of client's options, 0 when it
// cannot tell.
func readTimeout(client goredis.UniversalClient) time.Duration {
	switch c := client.(type) {
	case *goredis.Client:
		return c.Options().ReadTimeout
	case *goredis.ClusterClient:
		return c.Options().ReadTimeout
	case *goredis.Ring:
		return c.Options().ReadTimeout
	}
	return 0
}

// Wire returns cfg with this Node's parts installed: the peers' Senders,
// the Node as Reship (a dcsync.WriteAheadReship: Write returns once the
// write is in the outbound stream, and the local group applies it), and,
// when cfg.Dedupe is nil, the Redis dedupe store. A Processor that is not a
// dcsync.BatchProcessor is wrapped in one that applies a batch
// Concurrency requests at once (see NodeConfig.Concurrency); writes of
// Syncer.Write reach it unchanged. DC is set when empty.
func (n *Node) Wire(cfg dcsync.Config) dcsync.Config {
	cfg.DC = or(cfg.DC, n.cfg.DC)
	cfg.Peers = n.Senders()
	cfg.Reship = n
	if _, batch := cfg.Processor.(dcsync.BatchProcessor); !batch && cfg.Processor != nil && n.cfg.Concurrency > 1 {
		cfg.Processor = lanes{cfg.Processor, n.cfg.Concurrency}
	}
	if cfg.Dedupe == nil {
		cfg.Dedupe = n.dedupe
	}
	return cfg
}

// Reship implements dcsync.Reship: it adds req to the outbound stream and
// returns once Redis has it. The writes of concurrent calls go together, in
// one entry (see outbox). The Node is a dcsync.WriteAheadReship, so this
// is all Syncer.Write does: the workers of the stream's local group apply
// the write here, and those of each peer's group ship it, so a write is
// applied here only once it is durably queued for the peers.
func (n *Node) Reship(ctx context.Context, req *dcsync.Request) error {
	return n.out.add(ctx, req)
}

// WritesAhead makes the Node a dcsync.WriteAheadReship: the workers of
// the outbound stream's local group apply the writes it takes.
func (n *Node) WritesAhead() {}

var _ dcsync.WriteAheadReship = (*Node)(nil)

// localGroup is the consumer group of the outbound stream whose workers
// apply this datacenter's own writes; its name is no datacenter's.
const localGroup = "@local"

// Handoff returns the Processor that adds writes to the apply stream,
// whose workers apply them here: what the collect hop hands accepted
// writes to, and a way to re-drive dead letters of the apply hop. It is a
// dcsync.BatchProcessor: a batch costs one entry per BatchSize requests.
func (n *Node) Handoff() dcsync.BatchProcessor { return handoff{n} }

type handoff struct{ n *Node }

// Process adds req to the apply stream.
func (h handoff) Process(ctx context.Context, req *dcsync.Request) error {
	return h.ProcessBatch(ctx, []*dcsync.Request{req})
}

// ProcessBatch adds reqs to the apply stream, as one entry per BatchSize
// requests.
func (h handoff) ProcessBatch(ctx context.Context, reqs []*dcsync.Request) error {
	return addBatch(ctx, h.n.cfg.Client, h.n.apply, reqs, h.n.cfg.BatchSize, nil)
}

// next returns the collect hop's next hop for a batch that came in the
// encodings raw holds: it adds writes to the apply stream in those
// encodings, deferring those claimed through later, when set, to the
// batch's writing before its acknowledgement (see deferred).
func (n *Node) next(raw map[*dcsync.Request]string, later *deferred) hop.Next {
	return func(ctx context.Context, reqs []*dcsync.Request) []error {
		var direct []*dcsync.Request
		var at []int
		for i, req := range reqs {
			if later == nil || !later.add(req) {
				direct, at = append(direct, req), append(at, i)
			}
		}
		if len(direct) == 0 {
			return nil
		}
		errs := make([]error, len(reqs))
		for k, err := range hop.Errs(addBatch(ctx, n.cfg.Client, n.apply, direct, n.cfg.BatchSize, raw), len(direct)) {
			errs[at[k]] = err
		}
		return errs
	}
}

// outbox adds the writes of concurrent Reship calls to the outbound stream
// together: a write waits while an add is under way, and then goes in one
// entry, one XADD, with every write that waited with it (up to BatchSize).
// A lone writer pays one round trip, as it would alone; many pay a share of
// one each. Writers encode their writes straight into the entry they join,
// so a write costs no allocation of its own.
type outbox struct {
	n        *Node
	mu       sync.Mutex
	queue    []*outEntry // waiting for their add; writes join the last
	flushing bool        // an add is under way: one at a time
	spare    [][]byte    // frames of entries added, for reuse
}

// maxJoinRounds bounds how often the outbox yields to writers joining an
// entry before it adds the entry.
const maxJoinRounds = 4

// outEntry is an entry of the outbound stream in the making.
type outEntry struct {
	frames []byte
	count  int
	done   chan struct{} // closed once added, or failed with err
	err    error
}

func (o *outbox) add(ctx context.Context, req *dcsync.Request) error {
	o.mu.Lock()
	var e *outEntry
	if k := len(o.queue); k > 0 && o.queue[k-1].count < o.n.cfg.BatchSize {
		e = o.queue[k-1]
	} else {
		e = &outEntry{done: make(chan struct{})}
		if k := len(o.spare); k > 0 {
			e.frames, o.spare = o.spare[k-1][:0], o.spare[:k-1]
		}
		o.queue = append(o.queue, e)
	}
	e.frames = appendRequestFrame(e.frames, req)
	e.count++
	if !o.flushing {
		o.flushing = true
		go o.flush()
	}
	o.mu.Unlock()
	select {
	case <-e.done:
		if e.err != nil {
			return fmt.Errorf("redis: add %s to %s: %w", req.ID, o.n.outbound, e.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redis: add %s to %s, perhaps not done: %w", req.ID, o.n.outbound, ctx.Err())
	}
}

// flush adds the queued entries until none is left. The adds do not end
// with a writer's context: they carry other writers' writes too, and are
// bounded by the client's timeouts.
func (o *outbox) flush() {
	for {
		// Let the writers woken by the last add, and others ready to run,
		// join the entry first, as long as they keep coming (a few rounds
		// at most): it gets bigger, and the round trips fewer.
		for joined, round := -1, 0; round < maxJoinRounds; round++ {
			runtime.Gosched()
			o.mu.Lock()
			n := 0
			if len(o.queue) > 0 {
				n = o.queue[0].count
			}
			o.mu.Unlock()
			if n == joined || n >= o.n.cfg.BatchSize {
				break
			}
			joined = n
		}
		o.mu.Lock()
		if len(o.queue) == 0 {
			o.flushing = false
			o.mu.Unlock()
			return
		}
		e := o.queue[0]
		o.queue[0] = nil
		if o.queue = o.queue[1:]; len(o.queue) == 0 {
			o.queue = o.queue[:0:0]
		}
		o.mu.Unlock()
		e.err = o.n.replicated(context.Background(), o.n.cfg.Client, o.n.outbound, func(c adder) error {
			return c.XAdd(context.Background(), &goredis.XAddArgs{Stream: o.n.outbound,
				Values: batchValues(e.count, e.frames)}).Err()
		})
		close(e.done)
		o.mu.Lock()
		if len(o.spare) < 2 { // one filling while another is added
			o.spare = append(o.spare, e.frames) // the client is done with it
		}
		o.mu.Unlock()
	}
}

// Senders returns, per peer, the dcsync.Sender that adds writes to the
// peer's inbound stream for this datacenter, for dcsync.Config.Peers.
func (n *Node) Senders() map[string]dcsync.Sender {
	senders := make(map[string]dcsync.Sender, len(n.cfg.Peers))
	for peer, c := range n.cfg.Peers {
		senders[peer] = &Sender{n: n, client: c, stream: n.inbound(peer, n.cfg.DC), max: n.cfg.BatchSize}
	}
	return senders
}

// Dedupe returns the Node's dedupe store, shared through Redis by every
// process of the datacenter.
func (n *Node) Dedupe() *Dedupe { return n.dedupe }

// Lock returns a leader lock for this datacenter's reconcilers.
func (n *Node) Lock() *Lock {
	return NewLock(n.cfg.Client, Key(n.cfg.Prefix, n.cfg.DC, "leader"))
}

// Checkpoints returns a checkpoint store in this datacenter's Redis.
func (n *Node) Checkpoints() *Checkpoints {
	return NewCheckpoints(n.cfg.Client, n.cfg.Prefix+":checkpoint:")
}

// Sender adds batches of writes to a peer's inbound stream, as one entry
// per BatchSize requests. Node.Senders makes them.
type Sender struct {
	n      *Node
	client goredis.UniversalClient
	stream string
	max    int
}

var _ dcsync.Sender = (*Sender)(nil)

// Send implements dcsync.Sender. It returns an error wrapping the Redis
// error when the whole batch failed, and a *dcsync.BatchError when only
// some entries did.
func (s *Sender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	return s.send(ctx, reqs, nil)
}

// send is Send of requests some of which came in the encodings raw holds:
// those go to the peer as they came.
func (s *Sender) send(ctx context.Context, reqs []*dcsync.Request, raw map[*dcsync.Request]string) error {
	return s.n.replicated(ctx, s.client, s.stream, func(c adder) error {
		return addBatch(ctx, c, s.stream, reqs, s.max, raw)
	})
}

// rawSender is a Sender for one batch read from the outbound stream, the
// reship hop's: it forwards the requests in the encodings they were read
// in, which raw holds, rather than encoding them again.
type rawSender struct {
	*Sender
	raw map[*dcsync.Request]string
}

// Send implements dcsync.Sender.
func (s rawSender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	return s.send(ctx, reqs, s.raw)
}

// addBatch adds reqs to stream in client's server, max requests an entry,
// in one round trip, in the encodings raw holds for those read from a
// stream, and returns nil, a *dcsync.BatchError naming the requests of the
// entries that failed, or, when every add failed, the error.
func addBatch(ctx context.Context, client adder, stream string, reqs []*dcsync.Request, max int,
	raw map[*dcsync.Request]string) error {
	if len(reqs) == 0 {
		return nil
	}
	max = or(max, 256)
	if len(reqs) <= max {
		blob := encodeBatch(raw, reqs)
		err := client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: batchValues(len(reqs), blob)}).Err()
		putBlob(blob)
		if err != nil {
			return fmt.Errorf("redis: add %d requests to %s: %w", len(reqs), stream, err)
		}
		return nil
	}
	var blobs [][]byte
	cmds, err := client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		blobs = encodeEntries(raw, reqs, max, func(count int, frames []byte) {
			p.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: batchValues(count, frames)})
		})
		return nil
	})
	putBlobs(blobs)
	if err == nil {
		return nil
	}
	errs := make([]error, len(reqs))
	failed := 0
	for i, req := range reqs {
		e := err
		if c := i / max; c < len(cmds) {
			e = cmds[c].Err()
		}
		if e != nil {
			failed++
			errs[i] = fmt.Errorf("redis: add %s to %s: %w", req.ID, stream, e)
		}
	}
	if failed == len(reqs) {
		return fmt.Errorf("redis: add to %s: %w", stream, err)
	}
	return &dcsync.BatchError{Errs: errs}
}

// Close implements dcsync.Sender. It does not close the client, which
// belongs to the caller.
func (s *Sender) Close() error { return nil }

// Stats counts what a Node's workers did since NewNode.
type Stats struct {
	Read         uint64 // entries read from the streams, claims included
	Acked        uint64 // entries acknowledged: handed on, applied or dead-lettered
	Claimed      uint64 // entries taken over from consumers idle past ClaimIdle
	Reread       uint64 // entries a worker read again after losing its connection to Redis
	DeadLettered uint64 // dead letters written: requests, or entries that could not be decoded
	Stalled      uint64 // batches held back because their next hop was unavailable
	Trimmed      uint64 // acknowledged entries trimmed from the streams
}

// Stats returns the counters since NewNode.
func (n *Node) Stats() Stats {
	c := &n.stats
	return Stats{Read: c.read.Load(), Acked: c.acked.Load(), Claimed: c.claimed.Load(), Reread: c.reread.Load(),
		DeadLettered: c.deadLettered.Load(), Stalled: c.stalled.Load(), Trimmed: c.trimmed.Load()}
}

// Run runs the workers of every hop that reads from this datacenter's
// Redis — reship to each peer, collect from each peer, apply — and the
// janitor that trims the streams, until ctx ends; then it waits for the
// batches under way (for 5s at most: what they leave stays pending and is
// claimed later) and returns ctx's error. s must be the Syncer built
// from Wire's Config. Several processes of one datacenter may run a Node
// each, with distinct Consumer names: they share the work. Close s only
// after Run has returned.
func (n *Node) Run(ctx context.Context, s *dcsync.Syncer) error {
	if s.DC() != n.cfg.DC {
		return fmt.Errorf("redis: node of %s given the syncer of %s", n.cfg.DC, s.DC())
	}
	groups := n.groups(s)
	var wg sync.WaitGroup
	wg.Go(func() { n.checkPersistence(ctx) })
	for _, g := range groups {
		for i := range n.cfg.Workers {
			consumer := fmt.Sprintf("%s:%s:%d", n.cfg.Consumer, g.hop, i)
			wg.Go(func() { g.work(ctx, consumer) })
		}
	}
	for peer, c := range n.cfg.Peers {
		wg.Go(func() { n.warm(ctx, c, n.inbound(peer, n.cfg.DC), n.links[peer]) })
	}
	wg.Go(func() { n.janitor(ctx, groups) })
	wg.Wait()
	return ctx.Err()
}

// groups returns the consumer groups on this datacenter's streams, with
// what their workers do: the stages of s, one batch at a time (package
// hop).
func (n *Node) groups(s *dcsync.Syncer) []*group {
	var gs []*group
	st := hop.Of(s)
	// The collect hop claims a batch through one read of the Node's
	// Dedupe (see deferred), when that is the Syncer's store.
	defers := st.Dedupe() == dcsync.DedupeStore(n.dedupe)
	senders := n.Senders()
	for peer, c := range n.cfg.Peers {
		sender := senders[peer].(*Sender)
		inbound := n.inbound(peer, n.cfg.DC)
		gs = append(gs, &group{n: n, stream: n.outbound, name: peer, hop: "reship:" + peer,
			handle: func(ctx context.Context, reqs []*dcsync.Request, raw map[*dcsync.Request]string, _ *deferred, f *flight) []error {
				// Every batch of a reship worker is a flight (group.whole): f is set.
				return st.Ship(ctx, peer, fencedSender{rawSender{sender, raw}, f}, reqs)
			},
			probe: func(ctx context.Context) error { return c.Ping(ctx).Err() },
			whole: true,
			fence: func(consumer string) string { return inbound + ":fence:" + consumer },
			link:  n.links[peer],
		})
		gs = append(gs, &group{n: n, stream: n.inbound(n.cfg.DC, peer), name: "collect", hop: "collect:" + peer,
			handle: func(ctx context.Context, reqs []*dcsync.Request, raw map[*dcsync.Request]string, later *deferred, _ *flight) []error {
				if later == nil {
					return st.Collect(ctx, peer, reqs, nil, n.next(raw, nil))
				}
				return st.Collect(ctx, peer, reqs, later, n.next(raw, later))
			},
			defers: defers,
		})
	}
	apply := func(ctx context.Context, reqs []*dcsync.Request, _ map[*dcsync.Request]string, _ *deferred, _ *flight) []error {
		return st.Apply(ctx, reqs)
	}
	gs = append(gs, &group{n: n, stream: n.outbound, name: localGroup, hop: "local", handle: apply})
	gs = append(gs, &group{n: n, stream: n.apply, name: "apply", hop: "apply", handle: apply,
		// The collector committed these writes to the dedupe store when it
		// handed them off; forgetting them lets a later re-send (the
		// reconciler's) be applied instead of dropped as a duplicate.
		onDead: func(ctx context.Context, ids []string) error { return n.dedupe.forget(ctx, ids...) },
	})
	return gs
}
