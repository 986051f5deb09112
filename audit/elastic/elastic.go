// Package elastic is a dcsync.AuditLog in Elasticsearch 7 (or OpenSearch
// 2), through github.com/olivere/elastic/v7: the production audit store.
// Import it as esaudit, beside olivere's elastic:
//
//	import esaudit "github.com/dcsync/dcsync/audit/elastic"
//
// # Writing
//
// Append copies records onto a bounded queue; it never waits for
// Elasticsearch. Workers goroutines encode the queue into chunks of records
// and hand them to olivere's BulkProcessor, which sends bulk requests from as
// many goroutines, flushed at FlushActions records, FlushBytes bytes or
// FlushInterval, and retried with backoff; their answers are trimmed to each
// item's status and error. Records that cannot be sent — the queue is full,
// a bulk request failed after its retries, Elasticsearch is known to be
// down — are appended to a spool file in SpoolDir and replayed once
// Elasticsearch answers again. Every record has a deterministic document
// ID, so one sent twice (by a replay, a retried bulk request, or a caller)
// is stored once.
//
// # Storing
//
// Records live in daily indices named IndexPrefix-YYYY.MM.DD after the day
// (UTC) their write was accepted at its origin, so all records of a write
// share an index, behind the alias IndexPrefix. An index template gives them
// an explicit, strict mapping: keywords for the datacenters, stage, status
// and target, an integer attempt, date_nanos times — among them the first
// and last written time of an entry's writes —, and stored but not indexed,
// the writes packed (an ID dcsync makes in 11 bytes) and the requests of a
// process entry. A trace finds the IDs dcsync makes, UUIDv7s of their
// write's millisecond, by those times; any other ID is also a keyword.
// Indices are sorted by written.
//
// # Reading
//
// Trails reads only the daily indices of the window, filtered by origin and
// written time, in (written, id) order with search_after; the records of a
// write are adjacent in that order and grouped into its trail. A pass of the
// reconciler therefore costs what its window holds, not the history.
//
// Appended records are searchable by a search after at most FlushInterval
// plus a second of refresh, far below the reconciler's default Grace of 30s;
// Flush makes them searchable at once.
package elastic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wait"
)

// Config configures a Log. The zero value of every field selects its
// documented default.
type Config struct {
	// URLs of Elasticsearch nodes; default http://127.0.0.1:9200.
	URLs []string
	// HTTPClient sends the requests, for TLS or a proxy; default a client
	// with Timeout as its timeout.
	HTTPClient *http.Client
	// ClientOptions are applied to the olivere client after the Log's own
	// (sniffing and health checks off), for basic auth or headers. The Log
	// always sets the HTTP client, the retrier and the decoder itself: it
	// must see connection failures to spool around them.
	ClientOptions []elastic.ClientOptionFunc
	// IndexPrefix names everything the Log creates: daily indices
	// IndexPrefix-YYYY.MM.DD behind the alias IndexPrefix, the index
	// template IndexPrefix, and the checkpoint index IndexPrefix_checkpoints.
	// Lower-case letters, digits and "-_."; default "dcsync-audit".
	IndexPrefix string
	// Shards is the number of primary shards of a daily index; default 1.
	Shards int
	// Replicas is the number of replicas of each shard; zero means none,
	// right for a single node. Set 1 or more on a cluster.
	Replicas int
	// RefreshInterval is how often new records become searchable; default
	// 1s. A negative value leaves it to Elasticsearch: every second while
	// the indices are searched, and not at all once no search came for
	// 30s — the next search then waits for the refresh it triggers, which
	// makes searchable everything indexed since the last one. Under a
	// steady load that is seconds of work the search waits for: with the
	// bench's sustained phase over HTTP, the last records became
	// searchable 3.9 to 7 s after the last write at 5,000 to 20,000
	// writes/s, against 0.1 to 0.5 s at up to 40,000 writes/s with 1s
	// (load 13 to 40; BENCHMARKS.md).
	RefreshInterval time.Duration
	// TranslogDurability is the daily indices' index.translog.durability.
	// "request", the default, has Elasticsearch fsync its translog before it
	// acknowledges a bulk request, so a stored record survives a crash of
	// the node. "async" fsyncs every five seconds instead, in the
	// background, so bulk requests need not wait for the disk (on a disk
	// with a fast fsync it measured within noise: 1% less CPU and 3% more
	// records a second), but a crash of the node (not of this process) loses
	// the records it acknowledged in the last five seconds, which the Log
	// will not send again. The reconciler then sees their stages as missing: it re-sends
	// writes whose apply record was lost, harmlessly, but cannot re-send a
	// write whose process record, which carries it, was lost.
	TranslogDurability string
	// Workers is the number of goroutines encoding records, and of bulk
	// requests in flight; default 2.
	Workers int
	// FlushActions sends a bulk request once it holds this many records,
	// handed over in chunks of an eighth of them; default 1000.
	FlushActions int
	// FlushBytes sends a bulk request once it holds this many bytes;
	// default 5 MiB.
	FlushBytes int
	// FlushInterval sends a bulk request at least this often; default 1s.
	FlushInterval time.Duration
	// Retries is how many times a failed bulk request is retried before its
	// records spool; default 3.
	Retries int
	// RetryWait is the wait before the first retry, doubling for each
	// further one up to 5s; default 100ms.
	RetryWait time.Duration
	// QueueSize is how many records may wait to be encoded and sent; past
	// it, Append spools. Default 65536.
	QueueSize int
	// SpoolDir holds the records Elasticsearch could not take yet. A Log
	// replays what it finds there at start, so records spooled before a
	// crash are sent once a Log opens the directory again; one Log per
	// directory. Default: a slot of DefaultSpoolDir(IndexPrefix), under
	// the user's cache directory, that no other open Log of the machine
	// holds; a process restarted after a crash takes the slot the dead
	// one left and replays it. Set it where the service keeps its state
	// when the cache directory is not kept across restarts (a container's
	// home, a tmpfs).
	SpoolDir string
	// ReplayInterval is how often an unreachable Elasticsearch is probed and
	// the spool replayed, and how often the spool is synced to disk: a crash
	// of the machine loses at most the records spooled in the last interval.
	// Default 1s.
	ReplayInterval time.Duration
	// Timeout bounds one request to Elasticsearch; default 30s.
	Timeout time.Duration
	// Logger receives outages, recoveries and records Elasticsearch
	// refused; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.URLs) == 0 {
		c.URLs = []string{"http://127.0.0.1:9200"}
	}
	c.IndexPrefix = or(c.IndexPrefix, "dcsync-audit")
	c.Shards = or(c.Shards, 1)
	c.RefreshInterval = or(c.RefreshInterval, time.Second)
	c.TranslogDurability = or(c.TranslogDurability, "request")
	c.Workers = or(c.Workers, 2)
	c.FlushActions = or(c.FlushActions, 1000)
	c.FlushBytes = or(c.FlushBytes, 5<<20)
	c.FlushInterval = or(c.FlushInterval, time.Second)
	c.Retries = or(c.Retries, 3)
	c.RetryWait = or(c.RetryWait, 100*time.Millisecond)
	c.QueueSize = or(c.QueueSize, 1<<16)
	c.ReplayInterval = or(c.ReplayInterval, time.Second)
	c.Timeout = or(c.Timeout, 30*time.Second)
	c.Logger = or(c.Logger, slog.Default())
	return c
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// validPrefix is what Elasticsearch accepts as the start of an index name.
var validPrefix = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,199}$`)

// ErrUnavailable matches the errors of requests that did not reach
// Elasticsearch, and of Flush and Close while records wait in the spool.
var ErrUnavailable = errors.New("elastic: Elasticsearch unavailable")

// ErrClosed is returned by Append and Flush after Close.
var ErrClosed = errors.New("elastic: audit log closed")

// Log is a dcsync.AuditLog in Elasticsearch. Create it with New; it is
// safe for concurrent use.
type Log struct {
	cfg    Config
	prefix string
	client *elastic.Client
	bulk   *elastic.BulkProcessor
	queue  chan []dcsync.Entry
	coders sync.Pool // of *chunker, for spooling
	spool  *spool
	log    *slog.Logger

	// down is set when a request failed and cleared when a probe succeeds;
	// while it is set, records spool instead of queueing.
	down atomic.Bool
	// ready is set once the template is installed: records must not create
	// a daily index before it is.
	ready    atomic.Bool
	recovery sync.Mutex // serialises install, probe and replay

	mu     sync.RWMutex // held shared by Append and Flush, exclusive by Close
	closed bool

	queued, taken atomic.Int64  // records put on the queue, and taken off it, ever
	handed        atomic.Int64  // chunks handed to the bulk processor, ever
	settled       atomic.Int64  // of those, chunks whose bulk request ended, stored or spooled
	inQueue       atomic.Int64  // records on the queue now, or about to be
	visited       *atomic.Int64 // when set, by tests, searches are profiled and add the documents they visit
	stats         struct{ appended, indexed, rejected, spooled, replayed atomic.Uint64 }

	stop         chan struct{}
	pumps        sync.WaitGroup // the goroutines draining the queue
	replayerDone chan struct{}  // closed when the replayer has exited
}

var _ dcsync.AuditLog = (*Log)(nil)

// New returns a Log writing to the Elasticsearch of cfg, and installs its
// index template. When Elasticsearch cannot be reached, New still succeeds:
// records spool until it can, and the template is installed then.
func New(ctx context.Context, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if !validPrefix.MatchString(cfg.IndexPrefix) {
		return nil, fmt.Errorf("elastic: invalid IndexPrefix %q", cfg.IndexPrefix)
	}
	if d := cfg.TranslogDurability; d != "request" && d != "async" {
		return nil, fmt.Errorf("elastic: invalid TranslogDurability %q", d)
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.IndexPrefix)
	if err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, prefix: cfg.IndexPrefix, client: client, spool: sp, log: cfg.Logger,
		queue: make(chan []dcsync.Entry, min(cfg.QueueSize, 4096)), stop: make(chan struct{}),
		replayerDone: make(chan struct{})}
	l.coders.New = func() any { return l.chunker(spoolPiece) }
	l.bulk, err = client.BulkProcessor().Name("dcsync-audit-" + l.prefix).
		Workers(cfg.Workers).BulkActions(ceilDiv(cfg.FlushActions, cfg.chunkRecords())).BulkSize(cfg.FlushBytes).
		FlushInterval(cfg.FlushInterval).Backoff(bulkBackoff{cfg.RetryWait, cfg.Retries}).
		After(l.after).Do(context.Background())
	if err != nil {
		_ = sp.close()
		return nil, fmt.Errorf("elastic: start bulk processor: %w", err)
	}
	switch err := l.install(ctx); {
	case err == nil:
		l.ready.Store(true)
	case errors.Is(err, ErrUnavailable):
		l.down.Store(true)
		l.log.Warn("elastic: Elasticsearch unavailable at start; spooling audit records", "dir", sp.dir, "err", err)
	default:
		_ = l.bulk.Close()
		_ = sp.close()
		return nil, err
	}
	for range cfg.Workers {
		l.pumps.Add(1)
		go l.pump()
	}
	go l.replayer()
	return l, nil
}

// bulkBackoff retries a bulk request a bounded number of times, so that a
// request that cannot succeed ends in the spool.
type bulkBackoff struct {
	wait    time.Duration
	retries int
}

func (b bulkBackoff) Next(retry int) (time.Duration, bool) {
	if retry > b.retries {
		return 0, false
	}
	return min(b.wait<<(retry-1), 5*time.Second), true
}

// Append implements dcsync.AuditLog. It puts the entries on the queue, or
// spools them when the queue is full or Elasticsearch is down, and returns
// without waiting for Elasticsearch. It fails only when the spool cannot
// be written. The entries' slices must not change after it.
func (l *Log) Append(_ context.Context, recs []dcsync.Entry) error {
	n := int64(0)
	for i := range recs {
		n += int64(len(recs[i].IDs))
	}
	if n == 0 {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.stats.appended.Add(uint64(n))
	if !l.down.Load() {
		if l.inQueue.Add(n) <= int64(l.cfg.QueueSize) {
			select {
			case l.queue <- slices.Clone(recs): // the caller may reuse the slice of entries
				l.queued.Add(n)
				return nil
			default:
			}
		}
		l.inQueue.Add(-n)
	}
	return l.spoolRecords(recs)
}

// spoolRecords encodes records straight into the spool's file, a piece at
// a time: while Elasticsearch lags, this is the path of most records.
func (l *Log) spoolRecords(recs []dcsync.Entry) error {
	c := l.coders.Get().(*chunker)
	defer l.coders.Put(c)
	for i := range recs {
		if c.add(&recs[i]) || i == len(recs)-1 {
			if c.n == 0 {
				continue
			}
			n := c.n
			if err := l.spool.writeLines(c.buf, n); err != nil {
				c.reset()
				l.log.Error("elastic: audit records lost: spool write failed", "records", len(recs)-i-1+n, "err", err)
				return err
			}
			c.reset()
			l.stats.spooled.Add(uint64(n))
		}
	}
	return nil
}

// spoolChunks writes chunks to the spool, marking them spooled.
func (l *Log) spoolChunks(chunks ...*chunk) error {
	for _, c := range chunks {
		c.spooled.Store(true)
		if err := l.spool.writeLines([]byte(c.lines), c.n); err != nil {
			l.log.Error("elastic: audit records lost: spool write failed", "records", c.n, "err", err)
			return err
		}
		l.stats.spooled.Add(uint64(c.n))
	}
	return nil
}

const (
	// chunksPerRequest is how many full chunks make a bulk request of
	// FlushActions records or FlushBytes bytes.
	chunksPerRequest = 8
	// chunkLinger is how long a pump holds a chunk that is not full before
	// it hands it over: long enough to gather records when they trickle in,
	// short against FlushInterval.
	chunkLinger = 5 * time.Millisecond
	// spoolPiece bounds the buffer records are encoded into on their way to
	// the spool.
	spoolPiece = 256 << 10
)

// chunkRecords is the number of records of a full chunk.
func (c Config) chunkRecords() int { return max(1, c.FlushActions/chunksPerRequest) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// chunker encodes records into a chunk until it is full.
type chunker struct {
	e                   encoder
	log                 *slog.Logger
	buf                 []byte
	n                   int // documents
	records             int // writes of the documents
	maxRecords, maxSize int
}

func (l *Log) chunker(maxSize int) *chunker {
	return &chunker{e: encoder{prefix: l.prefix}, log: l.log, maxRecords: l.cfg.chunkRecords(), maxSize: maxSize}
}

// add encodes d and reports whether the chunk is full. An entry that
// cannot be encoded (its requests too large for internal/wire) is logged
// and left out.
func (c *chunker) add(d *dcsync.Entry) bool {
	mark := len(c.buf)
	buf, n, err := c.e.appendPair(c.buf, d)
	if err != nil {
		c.log.Error("elastic: audit entry dropped", "dc", d.DC, "stage", d.Stage, "err", err)
		c.buf = buf[:mark]
	} else {
		c.buf, c.n, c.records = buf, c.n+n, c.records+len(d.IDs)
	}
	return c.n >= c.maxRecords || len(c.buf) >= c.maxSize
}

// take returns the chunk of the records added since the last take.
func (c *chunker) take() *chunk {
	ch := &chunk{lines: string(c.buf), n: c.n, records: c.records}
	c.reset()
	return ch
}

func (c *chunker) reset() { c.buf, c.n, c.records = c.buf[:0], 0, 0 }

// pump encodes queued records into chunks and hands each, once full or
// after chunkLinger, to the bulk processor, or to the spool while
// Elasticsearch is down, until the queue is closed and drained. Workers
// pumps encode in parallel.
func (l *Log) pump() {
	defer l.pumps.Done()
	c := l.chunker(max(l.cfg.FlushBytes/chunksPerRequest, 1))
	linger := time.NewTimer(chunkLinger)
	linger.Stop()
	armed := false
	for {
		var due <-chan time.Time
		if armed {
			due = linger.C
		}
		select {
		case batch, ok := <-l.queue:
			if !ok {
				if c.n > 0 {
					l.hand(c.take())
				}
				return
			}
			for i := range batch {
				if c.add(&batch[i]) {
					l.hand(c.take())
				}
			}
			switch {
			case c.n > 0 && !armed:
				linger.Reset(chunkLinger)
				armed = true
			case c.n == 0 && armed:
				linger.Stop()
				armed = false
			}
		case <-due:
			armed = false
			l.hand(c.take())
		}
	}
}

// hand gives a chunk to the bulk processor, or to the spool while
// Elasticsearch is down.
func (l *Log) hand(c *chunk) {
	if l.down.Load() {
		_ = l.spoolChunks(c)
	} else {
		l.handed.Add(1)
		l.bulk.Add(c)
	}
	n := int64(c.records)
	l.inQueue.Add(-n)
	l.taken.Add(n)
}

// after is the bulk processor's callback. A request that failed after its
// retries spools its records and marks Elasticsearch down; the processor
// keeps them and sends them again with its next request, which the
// document IDs make harmless. Records refused one by one (a mapping
// conflict) would be refused again: they are counted and logged.
func (l *Log) after(_ int64, reqs []elastic.BulkableRequest, res *elastic.BulkResponse, err error) {
	chunks := make([]*chunk, len(reqs))
	for i, r := range reqs {
		chunks[i] = r.(*chunk)
		if chunks[i].settled.CompareAndSwap(false, true) {
			l.settled.Add(1)
		}
	}
	if err != nil {
		spill := slices.DeleteFunc(chunks, func(c *chunk) bool { return c.spooled.Load() })
		if l.down.CompareAndSwap(false, true) {
			l.log.Warn("elastic: bulk request failed; spooling audit records", "dir", l.spool.dir, "err", err)
		}
		_ = l.spoolChunks(spill...)
		return
	}
	l.count(res, chunks)
}

// count adds the outcome of a successful bulk request of chunks to the
// stats, and logs what Elasticsearch refused. The response's items follow
// the records of the chunks, in order.
func (l *Log) count(res *elastic.BulkResponse, chunks []*chunk) {
	if res == nil {
		return
	}
	if !res.Errors && len(res.Items) == 0 { // left unread by decoder: all stored
		for _, c := range chunks {
			l.stats.indexed.Add(uint64(c.n))
		}
		return
	}
	ci, ri := 0, 0 // chunk and record within it of the next item
	for _, item := range res.Items {
		for ci < len(chunks) && ri == chunks[ci].n {
			ci, ri = ci+1, 0
		}
		for _, r := range item {
			if r.Status < 300 {
				l.stats.indexed.Add(1)
				continue
			}
			l.stats.rejected.Add(1)
			reason, index, id := "", "", ""
			if r.Error != nil {
				reason = r.Error.Type + ": " + r.Error.Reason
			}
			if ci < len(chunks) {
				index, id = chunks[ci].action(ri)
			}
			l.log.Error("elastic: audit record refused", "index", index, "id", id, "status", r.Status, "reason", reason)
		}
		ri++
	}
}

// replayer syncs the spool to disk, probes Elasticsearch and replays the
// spool every ReplayInterval while there is something to recover, until
// Close.
func (l *Log) replayer() {
	defer close(l.replayerDone)
	t := time.NewTicker(l.cfg.ReplayInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if err := l.spool.sync(); err != nil {
			l.log.Error("elastic: spool sync failed", "dir", l.spool.dir, "err", err)
		}
		if l.down.Load() || l.spool.pending() > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
			_ = l.recover(ctx)
			cancel()
		}
	}
}

// recover installs the template if it is not yet, probes Elasticsearch if
// it is marked down, and replays the spool.
func (l *Log) recover(ctx context.Context) error {
	l.recovery.Lock()
	defer l.recovery.Unlock()
	if err := l.installLocked(ctx); err != nil {
		return err
	}
	if l.down.Load() {
		h, err := l.client.ClusterHealth().Do(ctx)
		if err != nil {
			return fmt.Errorf("elastic: probe: %w", err)
		}
		if h.Status == "red" {
			return fmt.Errorf("%w: cluster %s is red", ErrUnavailable, h.ClusterName)
		}
		l.down.Store(false)
		l.log.Info("elastic: Elasticsearch is back; replaying spooled audit records", "pending", l.spool.pending())
	}
	return l.replay(ctx)
}

// installed installs the template and the checkpoint index unless done.
func (l *Log) installed(ctx context.Context) error {
	l.recovery.Lock()
	defer l.recovery.Unlock()
	return l.installLocked(ctx)
}

func (l *Log) installLocked(ctx context.Context) error {
	if l.ready.Load() {
		return nil
	}
	if err := l.install(ctx); err != nil {
		return err
	}
	l.ready.Store(true)
	return nil
}

// Flush waits until every record appended before it is indexed and
// searchable. It returns an error matching ErrUnavailable when records
// remain in the spool because Elasticsearch cannot be reached; they are
// replayed once it can.
func (l *Log) Flush(ctx context.Context) error {
	for target := l.queued.Load(); l.taken.Load() < target; {
		if !wait.Sleep(ctx, time.Millisecond) {
			return fmt.Errorf("elastic: flush: %w", ctx.Err())
		}
	}
	// A chunk handed to the processor may still wait in its channel when
	// a worker flushes: flush until every chunk handed so far has settled.
	for handed := l.handed.Load(); ; {
		done := make(chan error, 1)
		go func() {
			l.mu.RLock() // Close must not stop the processor under its Flush
			defer l.mu.RUnlock()
			if l.closed {
				done <- ErrClosed
				return
			}
			done <- l.bulk.Flush()
		}()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("elastic: flush: %w", err)
			}
		case <-ctx.Done():
			return fmt.Errorf("elastic: flush: %w", ctx.Err())
		}
		if l.settled.Load() >= handed {
			break
		}
		if !wait.Sleep(ctx, time.Millisecond) {
			return fmt.Errorf("elastic: flush: %w", ctx.Err())
		}
	}
	if err := l.recover(ctx); err != nil {
		return err
	}
	if n := l.spool.pending(); n > 0 {
		return fmt.Errorf("%w: %d audit records wait in spool %s", ErrUnavailable, n, l.spool.dir)
	}
	if _, err := l.client.Refresh(l.prefix + "-*").Do(ctx); err != nil {
		return fmt.Errorf("elastic: refresh: %w", err)
	}
	return nil
}

// Close sends every queued record, or spools it when Elasticsearch cannot
// be reached, and stops the Log. Close the Syncers that append to it first:
// Append fails with ErrClosed after Close. It returns an error matching
// ErrUnavailable when records remain in the spool: the next Log on the same
// SpoolDir replays them.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.queue)
	l.pumps.Wait()
	err := l.bulk.Close() // sends what it holds; failures spool through after
	close(l.stop)
	<-l.replayerDone
	if l.spool.pending() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
		_ = l.recover(ctx)
		cancel()
	}
	n, dir := l.spool.pending(), l.spool.dir
	errs := []error{err, l.spool.close()}
	if n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d audit records left in spool %s", ErrUnavailable, n, dir))
	}
	return errors.Join(errs...)
}

// Stats counts what a Log did since New.
// Appended counts writes (records); the others count documents, one per
// entry (an entry whose writes span seconds is one per second).
type Stats struct {
	Appended uint64 // records (writes of entries) given to Append
	Indexed  uint64 // documents Elasticsearch stored; a document sent twice counts twice
	Rejected uint64 // documents Elasticsearch refused for good, such as a mapping conflict
	Spooled  uint64 // documents written to the spool
	Replayed uint64 // documents replayed from the spool
	Pending  int64  // documents in the spool now
	// PendingBytes is the size of the spool's files now.
	PendingBytes int64
}

// Stats returns the counters since New.
func (l *Log) Stats() Stats {
	s := &l.stats
	return Stats{Appended: s.appended.Load(), Indexed: s.indexed.Load(), Rejected: s.rejected.Load(),
		Spooled: s.spooled.Load(), Replayed: s.replayed.Load(), Pending: l.spool.pending(),
		PendingBytes: l.spool.bytes.Load()}
}

// Client returns the olivere client the Log uses.
func (l *Log) Client() *elastic.Client { return l.client }
