package dcsync

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Stage names a step of a write's journey.
type Stage string

// The stages, in the order a write passes them.
const (
	StageProcess Stage = "process" // applied at the origin by Write
	StageReship  Stage = "reship"  // sent from the origin to Target
	StageCollect Stage = "collect" // received and accepted by a peer
	StageApply   Stage = "apply"   // applied by a peer's Processor
)

// Status is the outcome of a stage.
type Status string

// The outcomes of a stage.
const (
	StatusOK     Status = "ok"
	StatusFailed Status = "failed"
)

// Record is one line of the audit log: one stage of one write in one
// datacenter. Every record of a write carries its ID, its Origin and its
// Written time, so the trail of a write can be gathered from any store with
// one filter.
type Record struct {
	ID      string    // request ID
	DC      string    // datacenter that logged the record
	Origin  string    // datacenter where the write entered
	Stage   Stage     // which step
	Status  Status    // its outcome
	Target  string    // for StageReship: the peer sent to
	Attempt int       // 1 for the first try of the stage, then counting
	Error   string    // why it failed, for StatusFailed
	Written time.Time // when the write was accepted at the origin
	Time    time.Time // when the stage happened
	// Request is the whole write, carried by the origin's StageProcess
	// record only: the reconciler re-sends it from there.
	Request *Request
}

// AuditLog stores records and reads back the trails of writes. Implementations
// are in audit/memory (the embedded default) and audit/elastic.
type AuditLog interface {
	// Append stores records. It may return before they are searchable.
	Append(ctx context.Context, recs []Record) error
	// Trails returns, a page at a time, the trails of the writes that entered
	// at q.Origin with Written in [q.From, q.To).
	Trails(ctx context.Context, q TrailQuery) (TrailPage, error)
}

// TrailQuery selects the writes of one origin in a time window.
type TrailQuery struct {
	Origin   string
	From, To time.Time
	After    string // cursor from the previous page; empty for the first page
	Limit    int    // writes per page; the store picks a default when zero
}

// TrailPage is one page of trails.
type TrailPage struct {
	Trails []Trail
	Next   string // cursor for the next page; empty after the last page
	// Unreadable counts the records of the page's writes the store holds
	// but could not decode, so the reconciler can say it did not see them.
	Unreadable int
}

// Trail is every record of one write, from every datacenter.
type Trail struct {
	ID      string
	Records []Record
}

// Applied reports whether dc has an ok apply record (or, for the origin, an
// ok process record).
func (t *Trail) Applied(dc string) bool {
	for _, r := range t.Records {
		if r.DC == dc && r.Status == StatusOK && (r.Stage == StageApply || r.Stage == StageProcess) {
			return true
		}
	}
	return false
}

// missesAny reports whether some peer has not applied the write.
func (t *Trail) missesAny(peers map[string]Sender) bool {
	for peer := range peers {
		if !t.Applied(peer) {
			return true
		}
	}
	return false
}

// Source returns the write as processed at its origin, or nil when the trail
// has no ok process record carrying it.
func (t *Trail) Source() *Request {
	for _, r := range t.Records {
		if r.Stage == StageProcess && r.Status == StatusOK && r.Request != nil {
			return r.Request
		}
	}
	return nil
}

// Attempts returns how many records of stage dc logged for target.
func (t *Trail) Attempts(dc string, stage Stage, target string) int {
	n := 0
	for _, r := range t.Records {
		if r.DC == dc && r.Stage == stage && r.Target == target {
			n++
		}
	}
	return n
}

// recordBufs recycles the record slices that a batch's stages fill before
// handing them to the audit queue, which copies them.
var recordBufs = sync.Pool{New: func() any { return new([]Record) }}

func getRecords() *[]Record { return recordBufs.Get().(*[]Record) }

func putRecords(b *[]Record) {
	clear(*b) // drop references to requests
	*b = (*b)[:0]
	recordBufs.Put(b)
}

// auditQueue batches records in memory and appends them to an AuditLog from
// one goroutine, so logging costs the write path one short critical section.
// The queue is split in shards, each under a lock of its own, picked at
// random by each add: writers rarely meet on one lock, so one preempted
// while holding it does not queue up the others. Records are copied into
// fixed-size blocks, recycled once appended, so a queue that runs long
// never grows and copies a buffer. It holds at most limit records waiting;
// past that, add waits for the flusher: a slow store slows writers rather
// than growing memory without bound.
type auditQueue struct {
	log    AuditLog
	linger time.Duration
	onErr  func(error)
	shards []auditShard

	wake    chan struct{} // signalled when a shard becomes non-empty
	busy    atomic.Bool   // the flusher holds records not yet appended
	closed  atomic.Bool
	flushed chan struct{} // closed when the flusher has exited
}

type auditShard struct {
	mu     sync.Mutex
	limit  int
	n      int         // records waiting
	blocks []*[]Record // waiting, the last one filling
	free   []*[]Record // appended blocks, for reuse
	room   sync.Cond   // signalled when the flusher takes the blocks
	_      [64]byte    // keeps shards' locks on cache lines of their own
}

// auditBlock is the number of records of a block: a few hundred kilobytes.
const auditBlock = 1024

func newAuditQueue(log AuditLog, limit int, linger time.Duration, onErr func(error)) *auditQueue {
	q := &auditQueue{log: log, linger: linger, onErr: onErr, shards: make([]auditShard, 4*runtime.GOMAXPROCS(0)),
		wake: make(chan struct{}, 1), flushed: make(chan struct{})}
	for i := range q.shards {
		sh := &q.shards[i]
		sh.limit = max(limit/len(q.shards), 1)
		sh.room.L = &sh.mu
	}
	go q.run()
	return q
}

// add queues records; it blocks while the queue is full.
func (q *auditQueue) add(recs ...Record) {
	if q == nil {
		return
	}
	sh := &q.shards[rand.N(len(q.shards))]
	sh.mu.Lock()
	for sh.n >= sh.limit && !q.closed.Load() {
		sh.room.Wait()
	}
	wake := sh.n == 0
	sh.n += len(recs)
	for len(recs) > 0 {
		b := sh.filling()
		k := min(len(recs), auditBlock-len(*b))
		*b = append(*b, recs[:k]...)
		recs = recs[k:]
	}
	sh.mu.Unlock()
	if wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// filling returns the block that takes the next record.
func (sh *auditShard) filling() *[]Record {
	if n := len(sh.blocks); n > 0 && len(*sh.blocks[n-1]) < auditBlock {
		return sh.blocks[n-1]
	}
	var b *[]Record
	if n := len(sh.free); n > 0 {
		b, sh.free = sh.free[n-1], sh.free[:n-1]
	} else {
		s := make([]Record, 0, auditBlock)
		b = &s
	}
	sh.blocks = append(sh.blocks, b)
	return b
}

// run appends what is queued until the queue closes.
func (q *auditQueue) run() {
	defer close(q.flushed)
	taken := make([][]*[]Record, len(q.shards))
	for {
		<-q.wake
		time.Sleep(q.linger) // let a batch gather
		closed := q.closed.Load()
		q.busy.Store(true)
		for i := range q.shards {
			sh := &q.shards[i]
			sh.mu.Lock()
			taken[i], sh.blocks = sh.blocks, taken[i][:0]
			sh.n = 0
			sh.room.Broadcast()
			sh.mu.Unlock()
		}
		for _, blocks := range taken {
			for _, b := range blocks {
				if err := q.log.Append(context.Background(), *b); err != nil {
					q.onErr(err)
				}
				clear(*b) // drop references to requests
				*b = (*b)[:0]
			}
		}
		for i := range q.shards {
			sh := &q.shards[i]
			sh.mu.Lock()
			// Keep as many blocks as a full shard needs; let the rest go.
			keep := max(sh.limit/auditBlock+1-len(sh.free), 0)
			sh.free = append(sh.free, taken[i][:min(keep, len(taken[i]))]...)
			sh.mu.Unlock()
			clear(taken[i])
		}
		q.busy.Store(false)
		if closed {
			return
		}
	}
}

// idle reports whether every record added has been appended.
func (q *auditQueue) idle() bool {
	if q == nil {
		return true
	}
	for i := range q.shards {
		sh := &q.shards[i]
		sh.mu.Lock()
		n := sh.n
		sh.mu.Unlock()
		if n > 0 {
			return false
		}
	}
	return !q.busy.Load()
}

// close flushes what is queued and stops the flusher.
func (q *auditQueue) close() {
	if q == nil {
		return
	}
	q.closed.Store(true)
	for i := range q.shards {
		sh := &q.shards[i]
		sh.mu.Lock()
		sh.room.Broadcast()
		sh.mu.Unlock()
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.flushed
}
