package dcsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync/internal/wait"
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

// Entry is what an AuditLog stores: one stage of a batch of writes in one
// datacenter — the IDs it carried, packed, its outcome and its time. A
// Syncer logs one entry per batch, stage and datacenter for what went well,
// and one entry per write for what failed (its Error names that write's
// failure), so the log grows by a few bytes per write and stage rather than
// by a document per write and stage.
//
// The writes of one entry were all accepted at their origin within one
// second of the Unix clock (Written's whole seconds are equal): the Syncer
// splits a batch at those boundaries, so that the per-second digests a
// reconciler compares (see Digest) cover whole entries.
type Entry struct {
	DC      string    // datacenter that logged the entry
	Origin  string    // datacenter where its writes entered
	Stage   Stage     // which step
	Status  Status    // its outcome
	Target  string    // for StageReship: the peer sent to
	Attempt int       // 1 for the first try of the stage, then counting
	Error   string    // why it failed, for StatusFailed
	Time    time.Time // when the stage happened (its first write, for a batch)
	// IDs are the request IDs of the writes, and Written, in the same
	// order, when each was accepted at its origin.
	IDs     []string
	Written []time.Time
	// Requests, on an ok StageProcess entry only, are the writes
	// themselves, in the order of IDs: the body is stored once, in the
	// origin's log, so that whichever instance of the datacenter took a
	// write, its active reconciler can re-send it. A store keeps them but
	// need not index them.
	Requests []*Request
}

// Records returns the entry as one Record per write.
func (e *Entry) Records() []Record {
	out := make([]Record, len(e.IDs))
	for i, id := range e.IDs {
		out[i] = e.Record(i)
		out[i].ID = id
	}
	return out
}

// Record returns the record of the i-th write of e.
func (e *Entry) Record(i int) Record {
	r := Record{ID: e.IDs[i], DC: e.DC, Origin: e.Origin, Stage: e.Stage, Status: e.Status,
		Target: e.Target, Attempt: e.Attempt, Error: e.Error, Time: e.Time}
	if i < len(e.Written) {
		r.Written = e.Written[i]
	}
	if i < len(e.Requests) {
		r.Request = e.Requests[i]
	}
	return r
}

// SetDigests returns the digests, by second, of ids, whose Written times
// are written, that fall in [from, to): what Digests returns for a set the
// caller holds. Stores use it.
func SetDigests(ids []string, written []time.Time, from, to time.Time) []Digest {
	by := map[int64]*Digest{}
	for i, id := range ids {
		w := written[i]
		if w.Before(from) || !w.Before(to) {
			continue
		}
		d := by[w.Unix()]
		if d == nil {
			d = &Digest{Second: w.Unix()}
			by[d.Second] = d
		}
		d.Add(id)
	}
	out := make([]Digest, 0, len(by))
	for _, d := range by {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Digest) int { return cmp.Compare(a.Second, b.Second) })
	return out
}

// IDHash is the hash of a request ID that digests add up: 64 bits of
// FNV-1a. Every store must use it, so that digests of two stores compare.
func IDHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// Digest summarises the writes a SetQuery selects that were accepted in one
// second: how many, and the sum (modulo 2⁶⁴) of their IDHash. Two logs
// whose digests of a second are equal hold the same writes of it, but for
// a chance of about 2⁻⁶⁴; a reconciler compares digests first and reads
// IDs only for the seconds whose digests differ, as the anti-entropy
// repair of Cassandra and Riak compares Merkle trees.
type Digest struct {
	Second int64  // Unix seconds of the writes' Written time
	Count  int    // writes
	Sum    uint64 // sum of their IDHash
}

// Add counts id in d.
func (d *Digest) Add(id string) { d.Count, d.Sum = d.Count+1, d.Sum+IDHash(id) }

// SetQuery selects the writes of Origin, accepted in [From, To), for
// which DC logged an entry of Stage with Status (StatusOK when empty).
type SetQuery struct {
	DC       string
	Origin   string
	Stage    Stage
	Status   Status
	From, To time.Time
}

// PeerDeclarer is implemented by an AuditLog that wants to know whom a
// datacenter ships its writes to before any record says so: the memory
// log, to tell when a write is complete everywhere. New declares its
// Config.Peers to its Config.Audit.
type PeerDeclarer interface {
	DeclarePeers(dc string, peers []string)
}

// declarePeers declares cfg's peers to its audit log, if it asks.
func declarePeers(cfg Config) {
	if d, ok := cfg.Audit.(PeerDeclarer); ok {
		d.DeclarePeers(cfg.DC, slices.Sorted(maps.Keys(cfg.Peers)))
	}
}

// AuditLog stores entries and reads back the trails of writes. Implementations
// are in audit/memory (the embedded default) and audit/elastic; audit/audittest
// checks a store against what the Syncer and the Reconciler rely on.
type AuditLog interface {
	// Append stores entries. It may return before they are searchable.
	Append(ctx context.Context, entries []Entry) error
	// Trails returns, a page at a time, the trails of the writes that entered
	// at q.Origin with Written in [q.From, q.To).
	Trails(ctx context.Context, q TrailQuery) (TrailPage, error)
	// Digests returns the digest of every second of [q.From, q.To) that
	// holds a write q selects, by second. Its cost follows the number of
	// entries of the window, not of writes.
	Digests(ctx context.Context, q SetQuery) ([]Digest, error)
	// IDs returns the IDs of the writes q selects, each once, in no order.
	IDs(ctx context.Context, q SetQuery) ([]string, error)
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
	full    atomic.Bool   // the log refuses entries: it is full of incomplete writes
	fulls   atomic.Uint64 // times the log became full
	waits   atomic.Uint64 // writes that waited for a full log
	dropped atomic.Uint64 // records given up: the log failed to take them
	held    atomic.Int64  // records the flusher holds for a full log
	closed  atomic.Bool
	flushed chan struct{} // closed when the flusher has exited
}

type auditShard struct {
	mu      sync.Mutex
	limit   int
	n       int          // records waiting, those of batches included
	blocks  []*[]Record  // waiting, the last one filling
	batches []auditBatch // waiting
	free    []*[]Record  // appended blocks, for reuse
	room    sync.Cond    // signalled when the flusher takes the blocks
	_       [64]byte     // keeps shards' locks on cache lines of their own
}

// auditBatch is the ok records of one stage of a batch of writes, alike
// but for each write's ID and Written time, which come from reqs. The
// queue holds it as one item, and the packer expands it: a batch's stage
// costs no Record per write. reqs must not change once queued.
type auditBatch struct {
	rec  Record // ID, Written and Request unset
	reqs []*Request
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
	if q == nil || len(recs) == 0 {
		return
	}
	q.put(q.roomy(), recs)
}

// roomy returns a shard picked at random, locked, once it has room.
func (q *auditQueue) roomy() *auditShard {
	sh := &q.shards[rand.N(len(q.shards))]
	sh.mu.Lock()
	for sh.n >= sh.limit && !q.closed.Load() {
		sh.room.Wait()
	}
	return sh
}

// addBatch queues the records of rec's stage for each of reqs, rec with
// each one's ID and Written time; it blocks while the queue is full.
func (q *auditQueue) addBatch(rec Record, reqs []*Request) {
	if q == nil || len(reqs) == 0 {
		return
	}
	sh := q.roomy()
	wake := sh.n == 0
	sh.n += len(reqs)
	sh.batches = append(sh.batches, auditBatch{rec, reqs})
	sh.mu.Unlock()
	if wake {
		q.signal()
	}
}

// signal wakes the flusher.
func (q *auditQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// addTo queues records in sh, which room chose, without waiting: the
// shard may overrun its limit by the records of the writers that passed
// room together.
func (q *auditQueue) addTo(sh *auditShard, recs ...Record) {
	if q == nil {
		return
	}
	sh.mu.Lock()
	q.put(sh, recs)
}

// put queues recs in sh, whose lock the caller holds, and unlocks it.
func (q *auditQueue) put(sh *auditShard, recs []Record) {
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
		q.signal()
	}
}

// room waits until a shard has room for a write's records, or ctx ends,
// and returns the shard for addTo. Write waits here, before the write is
// applied, so that its wait honours ctx; what it adds after the apply then
// never waits.
func (q *auditQueue) room(ctx context.Context) (*auditShard, error) {
	if q == nil {
		return nil, nil
	}
	sh := &q.shards[rand.N(len(q.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.n < sh.limit || q.closed.Load() {
		return sh, nil
	}
	q.waits.Add(1)
	stop := context.AfterFunc(ctx, func() {
		sh.mu.Lock()
		sh.room.Broadcast()
		sh.mu.Unlock()
	})
	defer stop()
	for sh.n >= sh.limit && !q.closed.Load() {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrAuditBusy, ctx.Err())
		}
		sh.room.Wait()
	}
	return sh, nil
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
//
// A log full of incomplete writes refuses new writes (process entries,
// ErrAuditFull): run holds them and tries them again with every flush,
// backing off, while it goes on appending the entries of later stages,
// which complete the writes the log holds: it never stops draining the
// shards, or the records that would complete the oldest writes could never
// reach a full log. New writes wait in Write (wait) while the log is full.
func (q *auditQueue) run() {
	defer close(q.flushed)
	taken := make([][]*[]Record, len(q.shards))
	takenBatches := make([][]auditBatch, len(q.shards))
	var all [][]Record
	var batches []auditBatch
	var held []Entry // process entries the log refused
	heldN := 0
	delay := time.Millisecond
	var closedAt time.Time
	for {
		if len(held) == 0 {
			<-q.wake
			time.Sleep(q.linger) // let a batch gather
		} else {
			select {
			case <-q.wake:
			case <-time.After(delay):
			}
			delay = min(2*delay, 100*time.Millisecond)
		}
		closed := q.closed.Load()
		q.busy.Store(true)
		var p packer
		for i := range q.shards {
			sh := &q.shards[i]
			sh.mu.Lock()
			taken[i], sh.blocks = sh.blocks, taken[i][:0]
			takenBatches[i], sh.batches = sh.batches, takenBatches[i][:0]
			sh.n = 0
			sh.room.Broadcast()
			sh.mu.Unlock()
		}
		all, batches = all[:0], batches[:0]
		for i, blocks := range taken {
			for _, b := range blocks {
				all = append(all, *b)
			}
			batches = append(batches, takenBatches[i]...)
			clear(takenBatches[i]) // drop references to requests
		}
		p.add(all...)
		p.addBatches(batches)
		clear(batches)
		for _, blocks := range taken {
			for _, b := range blocks {
				clear(*b) // drop references to requests
				*b = (*b)[:0]
			}
		}
		clear(all)
		var later []Entry
		for _, e := range p.entries {
			if e.Stage == StageProcess {
				held = append(held, e)
				heldN += len(e.IDs)
			} else {
				later = append(later, e)
			}
		}
		if len(later) > 0 {
			if err := q.log.Append(context.Background(), later); err != nil {
				q.onErr(err)
				q.dropped.Add(uint64(entryIDs(later)))
			}
		}
		if len(held) > 0 {
			err := q.log.Append(context.Background(), held)
			switch {
			case errors.Is(err, ErrAuditFull):
				if !q.full.Swap(true) {
					q.fulls.Add(1)
				}
				if closed && closedAt.IsZero() {
					closedAt = time.Now()
				}
				if closed && time.Since(closedAt) >= fullWait {
					q.onErr(fmt.Errorf("dcsync: %d audit records given up at close: %w", heldN, err))
					q.dropped.Add(uint64(heldN))
					held, heldN = nil, 0
				}
			default:
				if err != nil {
					q.onErr(err)
					q.dropped.Add(uint64(heldN))
				}
				held, heldN, delay = nil, 0, time.Millisecond
				q.full.Store(false)
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
		q.held.Store(int64(heldN))
		q.busy.Store(len(held) > 0)
		if closed && len(held) == 0 {
			q.full.Store(false)
			return
		}
	}
}

// fullWait is how long a closing queue keeps trying a full log.
const fullWait = 5 * time.Second

// wait returns at once unless the log is full of incomplete writes; then
// it waits until the log takes entries again, or ctx ends, and returns an
// error matching ErrAuditFull and ctx's error.
func (q *auditQueue) wait(ctx context.Context, closing <-chan struct{}) error {
	if q == nil || !q.full.Load() {
		return nil
	}
	q.waits.Add(1)
	for q.full.Load() {
		select {
		case <-closing:
			return ErrClosed
		default:
		}
		if !wait.Sleep(ctx, time.Millisecond) {
			return fmt.Errorf("%w: %w", ErrAuditFull, ctx.Err())
		}
	}
	return nil
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

// maxEntryIDs bounds the writes of one entry.
const maxEntryIDs = 1024

// packer packs records into entries: those of one kind — datacenter,
// origin, stage, outcome, target, attempt — whose writes were accepted in
// the same second share an entry; a failed record is an entry of its own.
type packer struct {
	entries []Entry
	open    map[packKey]int // kind → index in entries of the entry it fills
	last    packKey         // the kind of the last record, which the next one mostly shares
	lastAt  int             // and its entry's index, or -1
	n       []int           // records assigned to each entry
	at      []int32         // scratch: the entry of each record being added
}

// grow makes room in every entry for the records assigned to it, so that
// filling them appends in place.
func (p *packer) grow() {
	for i := range p.entries {
		e, n := &p.entries[i], p.n[i]
		if cap(e.IDs) < n {
			e.IDs = append(make([]string, 0, n), e.IDs...)
			e.Written = append(make([]time.Time, 0, n), e.Written...)
		}
	}
}

// addBatches packs the records of batches, as add packs records.
func (p *packer) addBatches(batches []auditBatch) {
	if len(batches) == 0 {
		return
	}
	if p.open == nil {
		p.open, p.lastAt = map[packKey]int{}, -1
	}
	at := p.at[:0]
	for i := range batches {
		b := &batches[i]
		for _, req := range b.reqs {
			at = append(at, int32(p.assignOK(&b.rec, req.Time().Unix())))
		}
	}
	p.at = at
	p.grow()
	k := 0
	for i := range batches {
		for _, req := range batches[i].reqs {
			e := &p.entries[at[k]]
			k++
			e.IDs = append(e.IDs, req.ID)
			e.Written = append(e.Written, req.Time())
		}
	}
}

type packKey struct {
	dc, origin, target string
	stage              Stage
	attempt            int
	second             int64
}

// PackRecords packs records into entries as a Syncer does before it
// appends them: records of one kind — datacenter, origin, stage, outcome,
// target, attempt — whose writes were accepted in the same second share an
// entry, in the order given; a failed record is an entry of its own. For
// tests and tools that build records by hand.
func PackRecords(recs []Record) []Entry {
	var p packer
	p.add(recs)
	return p.entries
}

// add packs the records of blocks: a first pass assigns each to its
// entry and counts them, so that a second fills each entry's slices
// allocated whole, rather than grown a copy at a time.
func (p *packer) add(blocks ...[]Record) {
	if p.open == nil {
		p.open, p.lastAt = map[packKey]int{}, -1
	}
	at := p.at[:0]
	for _, recs := range blocks {
		for i := range recs {
			at = append(at, int32(p.assign(&recs[i])))
		}
	}
	p.at = at
	p.grow()
	k := 0
	for _, recs := range blocks {
		for i := range recs {
			r, e := &recs[i], &p.entries[at[k]]
			k++
			e.IDs = append(e.IDs, r.ID)
			e.Written = append(e.Written, r.Written)
			if r.Request != nil {
				if e.Requests == nil {
					e.Requests = make([]*Request, 0, cap(e.IDs))
				}
				for len(e.Requests) < len(e.IDs)-1 {
					e.Requests = append(e.Requests, nil)
				}
				e.Requests = append(e.Requests, r.Request)
			}
		}
	}
}

// assign returns the index of the entry r goes to, starting one when
// there is none, and counts r in it.
func (p *packer) assign(r *Record) int {
	if r.Status != StatusOK {
		p.entries = append(p.entries, Entry{DC: r.DC, Origin: r.Origin, Stage: r.Stage, Status: r.Status,
			Target: r.Target, Attempt: r.Attempt, Error: r.Error, Time: r.Time})
		p.n = append(p.n, 1)
		return len(p.entries) - 1
	}
	return p.assignOK(r, r.Written.Unix())
}

// assignOK is assign for an ok record of a write accepted in second.
func (p *packer) assignOK(r *Record, second int64) int {
	k := packKey{dc: r.DC, origin: r.Origin, target: r.Target, stage: r.Stage, attempt: r.Attempt,
		second: second}
	at, ok := p.lastAt, p.lastAt >= 0 && k == p.last
	if !ok {
		at, ok = p.open[k]
	}
	if !ok || p.n[at] >= maxEntryIDs {
		at = len(p.entries)
		p.open[k] = at
		p.entries = append(p.entries, Entry{DC: r.DC, Origin: r.Origin, Stage: r.Stage, Status: StatusOK,
			Target: r.Target, Attempt: r.Attempt, Time: r.Time})
		p.n = append(p.n, 0)
	}
	p.last, p.lastAt = k, at
	p.n[at]++
	return at
}

// auditWaits returns how many writes waited for a full audit log.
func (s *Syncer) auditWaits() uint64 {
	if s.audit == nil {
		return 0
	}
	return s.audit.waits.Load()
}

// depth returns how many records wait to be appended: queued, or held
// while the log is full. Read at scrape time, never on the write path.
func (q *auditQueue) depth() int {
	if q == nil {
		return 0
	}
	n := int(q.held.Load())
	for i := range q.shards {
		sh := &q.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// dropCount returns how many records the log failed to take.
func (q *auditQueue) dropCount() uint64 {
	if q == nil {
		return 0
	}
	return q.dropped.Load()
}

// entryIDs returns the number of writes of entries.
func entryIDs(entries []Entry) int {
	n := 0
	for _, e := range entries {
		n += len(e.IDs)
	}
	return n
}
