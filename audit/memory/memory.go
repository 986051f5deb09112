// Package memory is an in-process dcsync.AuditLog: the embedded default, and
// the audit log of tests and of the quickstart. It keeps the most recent
// records, up to a bound, and reads a time window in time proportional to
// what was logged since the window began, not to what it holds. It stores
// dcsync.Entry values as they come — a batch of writes per entry — and
// hands them back as one record per write. Import it as memaudit, apart
// from the memory transport (memtransport):
//
//	import memaudit "github.com/dcsync/dcsync/audit/memory"
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/dcsync/dcsync"
)

// DefaultMaxRecords is how many records a Log keeps by default: the trails
// of about 2¹⁸ writes between two datacenters, four records each.
const DefaultMaxRecords = 1 << 20

// DefaultMaxBytes is how many bytes a Log keeps by default.
const DefaultMaxBytes = 256 << 20

// Config bounds a Log. The zero value of a field selects its default.
type Config struct {
	// MaxRecords bounds the records (writes of entries) held; default
	// DefaultMaxRecords.
	MaxRecords int
	// MaxBytes bounds the bytes held: IDs, requests, errors and the
	// bookkeeping of each record; default DefaultMaxBytes.
	MaxBytes int64
}

// Stats counts what a Log holds and did.
type Stats struct {
	Records int   // records held
	Bytes   int64 // bytes held
	Dropped int   // chunks of complete trails dropped to make room
	Refused int   // Appends refused because the log was full of incomplete writes
}

// maxChunk bounds the records of one chunk, the unit in which old records
// are dropped. Chunks of a megabyte or two are allocated, and their pages
// faulted in, in well under a millisecond: a larger one stalls the garbage
// collector's stop-the-world phases behind the copy.
const maxChunk = 1 << 13

// Log is an in-memory audit log. Create it with New.
//
// Append only copies entries, compacted, onto the newest of a list of
// chunks; when the list is full, the oldest chunk is dropped whole. No
// index is kept up to date on the write path, which is the path that
// matters: Trails groups the records of a window when a reconciler asks
// for it, skipping chunks that hold no record of the window, and Digests
// adds up per-entry digests computed once, on Append.
type Log struct {
	chunkSize  int // records of a chunk
	chunkBytes int // bytes of a chunk, as size counts them
	maxRecords int
	maxBytes   int64

	held    int // records
	bytes   int64
	dropped int
	refused int
	peers   map[uint32]uint64 // origin → bits (dcBit) of the peers it ships to
	dcBit   map[uint32]uint   // datacenter name → its bit, for at most 64

	mu     sync.Mutex
	chunks []*chunk // oldest first; the last one takes appends
	spare  *chunk   // a dropped chunk's storage, for the next one
	// arenaHint is the arena bytes the last chunk filled: a new chunk's
	// arena is allocated that large (and an eighth), not grown a copy at
	// a time, each growth a fresh allocation whose pages fault in.
	arenaHint int
	names     names
	kinds     []kindCount // records appended, by kind
	snaps     []*snapshot // windows being paged through, newest last
}

// maxSnapshots bounds the windows paged through at once, one per
// reconciler sharing the log.
const maxSnapshots = 4

// chunk holds entries in the order they were appended. Entries and writes
// hold offsets into the arena, which holds their IDs, errors and the small
// fields of their requests, so that however many records the log keeps,
// the garbage collector has few objects per chunk to mark. The payload of
// a process entry's request is held as the Syncer handed it over, not
// copied: it is already in memory, the Syncer's from Write on and never
// modified, and a copy of each body into fresh pages was the bulk of a
// write's cost in the log (docs/audit.md). A payload is one object without
// pointers, the request around it is let go.
type chunk struct {
	entries                []entry
	writes                 []write // the writes of entries, each entry's contiguous
	arena                  []byte
	payloads               [][]byte // the payloads of process entries' requests
	payloadBytes           int64    // what payloads hold
	minWritten, maxWritten int64    // unix nanoseconds
}

// entry is one dcsync.Entry, its small strings interned as indices into
// names, its writes writes[first:first+n] of its chunk.
type entry struct {
	time                              int64 // unix nanoseconds
	minWritten, maxWritten            int64
	err                               span
	first, n                          uint32
	sum                               uint64 // the sum of its IDs' dcsync.IDHash
	attempt                           int32
	dc, origin, target, stage, status uint32
}

// write is one write of an entry.
type write struct {
	written int64 // unix nanoseconds
	id      span  // its ID
	req     span  // its request but for the ID (appendRequest), or empty
}

// span locates bytes in a chunk's arena.
type span struct{ off, n uint32 }

// put appends b to c's arena and returns where it is.
func (c *chunk) put(b string) span {
	s := span{uint32(len(c.arena)), uint32(len(b))}
	c.arena = append(c.arena, b...)
	return s
}

func (c *chunk) bytes(s span) []byte { return c.arena[s.off : s.off+s.n] }

func (c *chunk) id(w *write) string { return string(c.bytes(w.id)) }

// of returns the writes of e.
func (c *chunk) of(e *entry) []write { return c.writes[e.first : e.first+e.n] }

// kindCount counts the records of one kind: dc, stage, status as names.
type kindCount struct {
	kind [3]uint32
	n    int
}

// Tally names a kind of record for Counts.
type Tally struct {
	DC     string
	Stage  dcsync.Stage
	Status dcsync.Status
}

// New returns a Log that keeps at most maxRecords records (a record is
// one write of an entry), and DefaultMaxBytes; 0 selects
// DefaultMaxRecords.
func New(maxRecords int) *Log { return NewConfig(Config{MaxRecords: maxRecords}) }

// NewConfig returns a Log bounded as cfg says.
//
// A full Log makes room by dropping its oldest chunk (an eighth of it, or
// less) only when every write that entered in it is complete: applied, or
// acknowledged, by every peer its datacenter ships to (as a Syncer declares
// them through DeclarePeers, and as the targets of its reship records and
// the datacenters that logged applying its writes show, up to 64
// datacenters). Otherwise Append refuses the entries with an error
// matching dcsync.ErrAuditFull, and the Syncer holds them and its writers
// until a reconciler has completed the oldest writes: the log never drops
// the only copy a reconciler could re-send from.
func NewConfig(cfg Config) *Log {
	maxRecords := cfg.MaxRecords
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	size := min(max(maxRecords/8, 1), maxChunk)
	return &Log{chunkSize: size, chunkBytes: int(max(maxBytes/8, 1<<10)), maxRecords: maxRecords, maxBytes: maxBytes,
		names: names{index: map[string]uint32{}}, peers: map[uint32]uint64{}, dcBit: map[uint32]uint{}}
}

// Append implements dcsync.AuditLog. It refuses the entries, appending
// none, with an error matching dcsync.ErrAuditFull when there is no room
// for their new writes (process entries) and the oldest chunk holds writes
// not yet complete. Entries of other stages complete the writes it holds:
// it takes them, past its bounds if it must, and drops them with the
// writes they complete.
func (l *Log) Append(_ context.Context, entries []dcsync.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, size := 0, int64(0)
	for i := range entries {
		if entries[i].Stage == dcsync.StageProcess { // the others complete writes held: always taken
			n += len(entries[i].IDs)
			size += entrySize(&entries[i])
		}
	}
	if !l.room(n, size, entries) {
		l.refused++
		return fmt.Errorf("memory: %w: it holds %d records in %d bytes, and its oldest writes are not applied everywhere yet",
			dcsync.ErrAuditFull, l.held, l.bytes)
	}
	k := 0 // index in l.kinds of the last entry's kind
	for i := range entries {
		l.append(&entries[i], &k)
	}
	return nil
}

// entrySize is about what d takes in a chunk.
func entrySize(d *dcsync.Entry) int64 {
	n := int64(unsafe.Sizeof(entry{})) + int64(len(d.Error))
	for i, id := range d.IDs {
		n += int64(unsafe.Sizeof(write{})) + int64(len(id))
		if i < len(d.Requests) && d.Requests[i] != nil {
			n += reqSize(d.Requests[i])
		}
	}
	return n
}

// reqSize is about what r takes in a chunk.
func reqSize(r *dcsync.Request) int64 {
	n := int64(len(r.Origin)+len(r.Key)+len(r.Op)+len(r.Payload)) + 32
	for k, v := range r.Header {
		n += int64(len(k)+len(v)) + 4
	}
	return n
}

// room drops the oldest chunks, while they are complete, until n more
// records of size bytes fit, and reports whether the log may take them: it
// may while it is within its bounds, so that it exceeds them by at most
// one Append (and the records that complete writes it holds), and a batch
// larger than the log is not refused forever. Each chunk it started with
// is dropped once at most: once they are all gone, what is left are the
// records carried for incoming, which complete the writes it brings and
// go with them later, so incoming is taken.
func (l *Log) room(n int, size int64, incoming []dcsync.Entry) bool {
	if n == 0 {
		return true
	}
	for left := len(l.chunks); l.held+n > l.maxRecords || l.bytes+size > l.maxBytes; left-- {
		if left == 0 {
			return true
		}
		if len(l.chunks) == 0 || !l.complete(l.chunks[0]) {
			return l.held <= l.maxRecords && l.bytes <= l.maxBytes
		}
		l.drop(incoming)
	}
	return true
}

// drop drops the oldest chunk. The ok reship and apply records in it whose
// writes' process records are in later chunks or among the incoming
// entries, which drop makes room for — they can arrive first: the queue
// appends later stages while a full log holds process entries back — are
// appended again, or those writes could never be seen complete.
func (l *Log) drop(incoming []dcsync.Entry) {
	old := l.chunks[0]
	carry := l.completions(old, incoming)
	l.chunks = slices.Delete(l.chunks, 0, 1)
	l.held -= len(old.writes)
	l.bytes -= old.size()
	l.dropped++
	if !slices.ContainsFunc(l.snaps, func(s *snapshot) bool { return slices.Contains(s.chunks, old) }) {
		clear(old.payloads) // let them go
		old.entries, old.writes, old.arena, old.payloads, old.payloadBytes = old.entries[:0], old.writes[:0], old.arena[:0], old.payloads[:0], 0
		l.spare = old
	}
	k := 0
	for i := range carry {
		d := &carry[i]
		l.append(d, &k)
		// Counted once already, when first logged.
		k = l.count([3]uint32{l.names.of(d.DC), l.names.of(string(d.Stage)), l.names.of(string(d.Status))}, k, -len(d.IDs))
	}
}

// completions returns, as entries, the ok reship and apply records of c
// whose writes have their ok process records in a later chunk or in
// incoming. Only the
// later chunks and entries whose writes overlap those records' in time are
// read: a drop costs about what it drops, however much the log holds.
func (l *Log) completions(c *chunk, incoming []dcsync.Entry) []dcsync.Entry {
	process, ok := l.names.of(string(dcsync.StageProcess)), l.names.of(string(dcsync.StatusOK))
	apply, reship := l.names.of(string(dcsync.StageApply)), l.names.of(string(dcsync.StageReship))
	later := map[string]bool{} // the IDs of those records: true once a later process record is found
	var lo, hi int64
	for i := range c.entries {
		e := &c.entries[i]
		if e.status != ok || (e.stage != apply && e.stage != reship) {
			continue
		}
		if len(later) == 0 || e.minWritten < lo {
			lo = e.minWritten
		}
		if len(later) == 0 || e.maxWritten > hi {
			hi = e.maxWritten
		}
		for _, w := range c.of(e) {
			later[c.id(&w)] = false
		}
	}
	if len(later) == 0 {
		return nil
	}
	for _, d := range l.chunks[1:] {
		if d.maxWritten < lo || d.minWritten > hi {
			continue
		}
		for j := range d.entries {
			de := &d.entries[j]
			if de.stage != process || de.status != ok || de.maxWritten < lo || de.minWritten > hi {
				continue
			}
			for _, w := range d.of(de) {
				if _, want := later[string(d.bytes(w.id))]; want {
					later[string(d.bytes(w.id))] = true
				}
			}
		}
	}
	for i := range incoming {
		if d := &incoming[i]; d.Stage == dcsync.StageProcess && d.Status == dcsync.StatusOK {
			for _, id := range d.IDs {
				if _, want := later[id]; want {
					later[id] = true
				}
			}
		}
	}
	var out []dcsync.Entry
	for i := range c.entries {
		e := &c.entries[i]
		if e.status != ok || (e.stage != apply && e.stage != reship) {
			continue
		}
		var d *dcsync.Entry
		for _, w := range c.of(e) {
			id := c.id(&w)
			if !later[id] {
				continue
			}
			if d == nil {
				out = append(out, dcsync.Entry{DC: l.names.list[e.dc], Origin: l.names.list[e.origin],
					Stage: dcsync.Stage(l.names.list[e.stage]), Status: dcsync.StatusOK, Target: l.names.list[e.target],
					Attempt: int(e.attempt), Time: time.Unix(0, e.time)})
				d = &out[len(out)-1]
			}
			d.IDs = append(d.IDs, id)
			d.Written = append(d.Written, time.Unix(0, w.written))
		}
	}
	return out
}

// size is what c holds, as entrySize counts it.
func (c *chunk) size() int64 {
	return int64(len(c.arena)) + c.payloadBytes + int64(len(c.writes))*int64(unsafe.Sizeof(write{})) +
		int64(len(c.entries))*int64(unsafe.Sizeof(entry{}))
}

// bit returns the bit of datacenter name, and false past 64 of them.
func (l *Log) bit(name uint32) (uint64, bool) {
	b, ok := l.dcBit[name]
	if !ok {
		if len(l.dcBit) == 64 {
			return 0, false
		}
		b = uint(len(l.dcBit))
		l.dcBit[name] = b
	}
	return 1 << b, true
}

// complete reports whether every write that entered in c (its ok process
// entries) is applied, or acknowledged, by every peer its origin ships to,
// as the entries of the chunks whose writes overlap c's in time say.
// Records of later stages in c are not asked about: while the log is
// full, the Syncer holds new writes' process entries back but appends
// their later records, which must not hold the log full in turn. They may
// go before their write's process record arrives; the write, its body and
// its completion never do.
func (l *Log) complete(c *chunk) bool {
	st := [3]uint32{l.names.of(string(dcsync.StageProcess)), l.names.of(string(dcsync.StageApply)),
		l.names.of(string(dcsync.StageReship))}
	ok := l.names.of(string(dcsync.StatusOK))
	pending := map[string]uint64{}
	for i := range c.entries {
		e := &c.entries[i]
		if e.stage != st[0] || e.status != ok {
			continue // records of later stages go with their writes' process records
		}
		self, known := l.bit(e.origin)
		if !known {
			return false
		}
		need := l.peers[e.origin] &^ self
		if need == 0 {
			continue
		}
		for _, w := range c.of(e) {
			pending[c.id(&w)] = need
		}
	}
	for _, d := range l.chunks {
		if len(pending) == 0 {
			return true
		}
		if d.maxWritten < c.minWritten || d.minWritten > c.maxWritten {
			continue
		}
		for i := range d.entries {
			e := &d.entries[i]
			var peer uint32
			switch {
			case e.status != ok || e.maxWritten < c.minWritten || e.minWritten > c.maxWritten:
				continue
			case e.stage == st[1]:
				peer = e.dc
			case e.stage == st[2]:
				peer = e.target
			default:
				continue
			}
			b, known := l.bit(peer)
			if !known {
				continue
			}
			for _, w := range d.of(e) {
				if need, found := pending[string(d.bytes(w.id))]; found {
					if need &^= b; need == 0 {
						delete(pending, string(d.bytes(w.id)))
					} else {
						pending[string(d.bytes(w.id))] = need
					}
				}
			}
		}
	}
	return len(pending) == 0
}

// DeclarePeers implements dcsync.PeerDeclarer: the writes of dc are
// complete once every one of peers has applied or acknowledged them.
func (l *Log) DeclarePeers(dc string, peers []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	origin := l.names.of(dc)
	for _, p := range peers {
		if b, ok := l.bit(l.names.of(p)); ok {
			l.peers[origin] |= b
		}
	}
}

// learn notes whom the origin of e ships to, from its reship and apply
// entries.
func (l *Log) learn(e *entry, stage dcsync.Stage) {
	var peer uint32
	switch stage {
	case dcsync.StageReship:
		peer = e.target
	case dcsync.StageApply:
		peer = e.dc
	default:
		return
	}
	if b, ok := l.bit(peer); ok && l.peers[e.origin]&b == 0 {
		l.peers[e.origin] |= b
	}
}

// append appends one entry, split over chunks if it does not fit.
func (l *Log) append(d *dcsync.Entry, k *int) {
	for start := 0; start < len(d.IDs); {
		c := l.tail()
		before := c.size()
		n := min(len(d.IDs)-start, l.chunkSize-len(c.writes))
		e := entry{err: c.put(d.Error), time: d.Time.UnixNano(), attempt: int32(d.Attempt),
			first: uint32(len(c.writes)), n: uint32(n),
			dc: l.names.of(d.DC), origin: l.names.of(d.Origin), target: l.names.of(d.Target),
			stage: l.names.of(string(d.Stage)), status: l.names.of(string(d.Status))}
		for j := start; j < start+n; j++ {
			w := write{id: c.put(d.IDs[j])}
			if j < len(d.Written) {
				w.written = d.Written[j].UnixNano()
			}
			if j < len(d.Requests) && d.Requests[j] != nil {
				r := d.Requests[j]
				c.payloads = append(c.payloads, r.Payload)
				c.payloadBytes += int64(len(r.Payload)) + int64(unsafe.Sizeof(r.Payload))
				off := len(c.arena)
				c.arena = appendRequest(c.arena, r, len(c.payloads)-1)
				w.req = span{uint32(off), uint32(len(c.arena) - off)}
			}
			if j == start || w.written < e.minWritten {
				e.minWritten = w.written
			}
			if j == start || w.written > e.maxWritten {
				e.maxWritten = w.written
			}
			e.sum += dcsync.IDHash(d.IDs[j])
			c.writes = append(c.writes, w)
		}
		if len(c.entries) == 0 || e.minWritten < c.minWritten {
			c.minWritten = e.minWritten
		}
		if len(c.entries) == 0 || e.maxWritten > c.maxWritten {
			c.maxWritten = e.maxWritten
		}
		l.learn(&e, d.Stage) // a failed reship names a peer too
		c.entries = append(c.entries, e)
		l.held += n
		l.bytes += c.size() - before
		*k = l.count([3]uint32{e.dc, e.stage, e.status}, *k, n)
		start += n
	}
}

// count adds n records of kind to the counts and returns the kind's index;
// hint is where to look first.
func (l *Log) count(kind [3]uint32, hint, n int) int {
	if hint < len(l.kinds) && l.kinds[hint].kind == kind {
		l.kinds[hint].n += n
		return hint
	}
	for i := range l.kinds {
		if l.kinds[i].kind == kind {
			l.kinds[i].n += n
			return i
		}
	}
	l.kinds = append(l.kinds, kindCount{kind, n})
	return len(l.kinds) - 1
}

// tail returns the chunk that takes the next records, starting a new one
// when the last is full.
func (l *Log) tail() *chunk {
	if n := len(l.chunks); n > 0 {
		last := l.chunks[n-1]
		if len(last.writes) < l.chunkSize && last.size() < int64(l.chunkBytes) {
			return last
		}
		l.arenaHint = len(last.arena)
	}
	c := l.spare
	l.spare = nil
	if c == nil {
		c = &chunk{writes: make([]write, 0, l.chunkSize),
			arena: make([]byte, 0, min(max(l.chunkSize*64, l.arenaHint+l.arenaHint/8), l.chunkBytes))}
	}
	l.chunks = append(l.chunks, c)
	return c
}

// Digests implements dcsync.AuditLog. An entry wholly inside the window
// adds its digest, computed on Append; only those the window cuts are read
// write by write.
func (l *Log) Digests(_ context.Context, q dcsync.SetQuery) ([]dcsync.Digest, error) {
	by := map[int64]*dcsync.Digest{}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set(q, func(c *chunk, e *entry) {
		sec := time.Unix(0, e.minWritten).Unix()
		if time.Unix(0, e.maxWritten).Unix() == sec && e.minWritten >= q.From.UnixNano() && e.maxWritten < q.To.UnixNano() {
			d := digest(by, sec)
			d.Count += int(e.n)
			d.Sum += e.sum
			return
		}
		for _, w := range c.of(e) {
			if in(w.written, q) {
				digest(by, time.Unix(0, w.written).Unix()).Add(c.id(&w))
			}
		}
	})
	out := make([]dcsync.Digest, 0, len(by))
	for _, d := range by {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b dcsync.Digest) int { return cmp.Compare(a.Second, b.Second) })
	return out, nil
}

func digest(by map[int64]*dcsync.Digest, sec int64) *dcsync.Digest {
	d := by[sec]
	if d == nil {
		d = &dcsync.Digest{Second: sec}
		by[sec] = d
	}
	return d
}

func in(written int64, q dcsync.SetQuery) bool {
	return written >= q.From.UnixNano() && written < q.To.UnixNano()
}

// IDs implements dcsync.AuditLog.
func (l *Log) IDs(_ context.Context, q dcsync.SetQuery) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set(q, func(c *chunk, e *entry) {
		for _, w := range c.of(e) {
			if id := c.id(&w); in(w.written, q) && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	})
	return out, nil
}

// set calls f with every entry of q's kind that holds a write of q's
// window.
func (l *Log) set(q dcsync.SetQuery, f func(*chunk, *entry)) {
	status := q.Status
	if status == "" {
		status = dcsync.StatusOK
	}
	var kind [4]uint32
	for i, name := range []string{q.DC, q.Origin, string(q.Stage), string(status)} {
		n, ok := l.names.index[name]
		if !ok {
			return
		}
		kind[i] = n
	}
	from, to := q.From.UnixNano(), q.To.UnixNano()
	for _, c := range l.chunks {
		if c.maxWritten < from || c.minWritten >= to {
			continue
		}
		for i := range c.entries {
			e := &c.entries[i]
			if e.dc == kind[0] && e.origin == kind[1] && e.stage == kind[2] && e.status == kind[3] &&
				e.maxWritten >= from && e.minWritten < to {
				f(c, e)
			}
		}
	}
}

// Trails implements dcsync.AuditLog. The first page of a window groups its
// records; later pages of the same window read from that grouping, so a
// pass sees the records appended up to its first page, and later ones on
// its next pass.
//
// TrailPage.Unreadable is always 0: the log decodes only what it encoded
// itself, in this process's memory.
func (l *Log) Trails(_ context.Context, q dcsync.TrailQuery) (dcsync.TrailPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	var after key
	if q.After != "" {
		var err error
		if after, err = parseCursor(q.After); err != nil {
			return dcsync.TrailPage{}, err
		}
	}
	from, to := q.From.UnixNano(), q.To.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.snapshot(q.Origin, from, to, q.After == "")
	i := 0
	if q.After != "" {
		i, _ = slices.BinarySearchFunc(s.trails, after, func(t strail, k key) int { return t.key.compare(k) })
		if i < len(s.trails) && s.trails[i].key == after {
			i++
		}
	}
	end := min(i+limit, len(s.trails))
	page := dcsync.TrailPage{Trails: make([]dcsync.Trail, 0, end-i)}
	for _, t := range s.trails[i:end] {
		page.Trails = append(page.Trails, dcsync.Trail{ID: t.key.id, Records: l.records(s, t.key.id, s.refs[t.first:t.last])})
	}
	if end < len(s.trails) {
		page.Next = s.trails[end-1].key.cursor()
	} else {
		l.snaps = slices.DeleteFunc(l.snaps, func(o *snapshot) bool { return o == s })
	}
	return page, nil
}

// snapshot returns the grouping of origin's window [from, to): a new one
// for the first page, else the one being paged through, rebuilt if it was
// dropped.
func (l *Log) snapshot(origin string, from, to int64, first bool) *snapshot {
	i := slices.IndexFunc(l.snaps, func(s *snapshot) bool { return s.origin == origin && s.from == from && s.to == to })
	if i >= 0 {
		if !first {
			return l.snaps[i]
		}
		l.snaps = slices.Delete(l.snaps, i, i+1)
	}
	if len(l.snaps) == maxSnapshots {
		l.snaps = slices.Delete(l.snaps, 0, 1)
	}
	s := l.group(origin, from, to)
	l.snaps = append(l.snaps, s)
	return s
}

// snapshot is the grouping of one window's records into trails.
type snapshot struct {
	origin   string
	from, to int64
	chunks   []*chunk // the chunks refs point into
	trails   []strail // sorted by key
	refs     []ref    // trails' records, each trail's contiguous
}

// strail is a trail of a snapshot: its key and its refs[first:last].
type strail struct {
	key         key
	first, last int
}

// ref locates a record: write w of entry e of chunk c of the snapshot.
type ref struct{ c, e, w int32 }

// key orders trails by the time their write was accepted, then by ID.
type key struct {
	written int64
	id      string
}

func (k key) compare(o key) int {
	if c := cmp.Compare(k.written, o.written); c != 0 {
		return c
	}
	return strings.Compare(k.id, o.id)
}

func (k key) cursor() string { return strconv.FormatInt(k.written, 10) + "/" + k.id }

func parseCursor(c string) (key, error) {
	ns, id, ok := strings.Cut(c, "/")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return key{}, fmt.Errorf("memory: malformed cursor %q", c)
	}
	return key{n, id}, nil
}

// group gathers the records of origin's writes accepted in [from, to) into
// trails. Only chunks holding a record of the window are read.
func (l *Log) group(origin string, from, to int64) *snapshot {
	s := &snapshot{origin: origin, from: from, to: to}
	o, ok := l.names.index[origin]
	if !ok {
		return s
	}
	var found []ref
	var trailOf []int32 // trail index of found[k]
	byID := map[string]int32{}
	for _, c := range l.chunks {
		if c.maxWritten < from || c.minWritten >= to {
			continue
		}
		ci := int32(len(s.chunks))
		s.chunks = append(s.chunks, c)
		for i := range c.entries {
			e := &c.entries[i]
			if e.origin != o || e.maxWritten < from || e.minWritten >= to {
				continue
			}
			for k := e.first; k < e.first+e.n; k++ {
				w := &c.writes[k]
				if w.written < from || w.written >= to {
					continue
				}
				t, seen := byID[string(c.bytes(w.id))]
				if !seen {
					id := c.id(w)
					t = int32(len(s.trails))
					byID[id] = t
					s.trails = append(s.trails, strail{key: key{w.written, id}})
				}
				s.trails[t].last++ // counts records until the layout below
				found, trailOf = append(found, ref{ci, int32(i), int32(k)}), append(trailOf, t)
			}
		}
	}
	// Lay each trail's records out contiguously, in the order logged.
	next := 0
	for t := range s.trails {
		n := s.trails[t].last
		s.trails[t].first, s.trails[t].last = next, next
		next += n
	}
	s.refs = make([]ref, len(found))
	for k, r := range found {
		t := &s.trails[trailOf[k]]
		s.refs[t.last] = r
		t.last++
	}
	slices.SortFunc(s.trails, func(a, b strail) int { return a.key.compare(b.key) })
	return s
}

// records turns refs into the records of write id they locate in s, by
// time.
func (l *Log) records(s *snapshot, id string, refs []ref) []dcsync.Record {
	out := make([]dcsync.Record, len(refs))
	for k, r := range refs {
		c := s.chunks[r.c]
		out[k] = l.record(c, &c.entries[r.e], &c.writes[r.w], id)
	}
	return byTime(out)
}

// byTime sorts records by their Time, those of one time in the order they
// were logged: writers log in parallel, so the order of logging alone can
// put a stage before the one that led to it.
func byTime(recs []dcsync.Record) []dcsync.Record {
	slices.SortStableFunc(recs, func(a, b dcsync.Record) int { return a.Time.Compare(b.Time) })
	return recs
}

// record returns write w of entry e, of chunk c, as the record of write
// id.
func (l *Log) record(c *chunk, e *entry, w *write, id string) dcsync.Record {
	n := l.names.list
	r := dcsync.Record{ID: id, DC: n[e.dc], Origin: n[e.origin], Stage: dcsync.Stage(n[e.stage]),
		Status: dcsync.Status(n[e.status]), Target: n[e.target], Attempt: int(e.attempt),
		Error: string(c.bytes(e.err)), Written: time.Unix(0, w.written), Time: time.Unix(0, e.time)}
	if w.req.n > 0 {
		r.Request = c.request(w)
	}
	return r
}

// Records returns the records of one write, by time. It reads every
// record the log holds: a tool for tests and operators.
func (l *Log) Records(id string) []dcsync.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []dcsync.Record
	for _, c := range l.chunks {
		for i := range c.entries {
			e := &c.entries[i]
			for k := e.first; k < e.first+e.n; k++ {
				if string(c.bytes(c.writes[k].id)) == id {
					out = append(out, l.record(c, e, &c.writes[k], id))
				}
			}
		}
	}
	return byTime(out)
}

// Counts returns how many records of each kind were ever appended.
func (l *Log) Counts() map[Tally]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[Tally]int, len(l.kinds))
	n := l.names.list
	for _, k := range l.kinds {
		out[Tally{DC: n[k.kind[0]], Stage: dcsync.Stage(n[k.kind[1]]), Status: dcsync.Status(n[k.kind[2]])}] += k.n
	}
	return out
}

// Len returns how many records the log holds.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Stats returns what the log holds and did.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Records: l.held, Bytes: l.bytes, Dropped: l.dropped, Refused: l.refused}
}

// names interns the few distinct short strings of records — datacenters,
// stages, statuses — so that an entry holds each as an index, and the
// garbage collector has fewer pointers to follow. They are kept for the
// life of the Log: the names of a deployment's datacenters are few.
type names struct {
	list  []string
	index map[string]uint32
}

func (n *names) of(s string) uint32 {
	if len(n.list) <= 16 { // faster than hashing s
		for i, name := range n.list {
			if name == s {
				return uint32(i)
			}
		}
	} else if i, ok := n.index[s]; ok {
		return i
	}
	i := uint32(len(n.list))
	n.list = append(n.list, s)
	n.index[s] = i
	return i
}
