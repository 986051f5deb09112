// Package memory is an in-process dcsync.AuditLog: the embedded default, and
// the audit log of tests and of the quickstart. It keeps the most recent
// records, up to a bound, and reads a time window in time proportional to
// what was logged since the window began, not to what it holds. Import it
// as memaudit, apart from the memory transport (memtransport):
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

	"github.com/dcsync/dcsync"
)

// DefaultMaxRecords is how many records a Log keeps by default: the trails
// of about 2¹⁸ writes between two datacenters, four records each.
const DefaultMaxRecords = 1 << 20

// maxChunk bounds the records of one chunk, the unit in which old records
// are dropped. Chunks of a megabyte or two are allocated, and their pages
// faulted in, in well under a millisecond: a larger one stalls the garbage
// collector's stop-the-world phases behind the copy.
const maxChunk = 1 << 13

// Log is an in-memory audit log. Create it with New.
//
// Append only copies records, compacted, onto the newest of a list of
// chunks; when the list is full, the oldest chunk is dropped whole. No
// index is kept up to date on the write path, which is the path that
// matters: Trails groups the records of a window when a reconciler asks
// for it, once a minute, skipping chunks that hold no record of the window.
type Log struct {
	chunkSize int
	maxChunks int

	mu     sync.Mutex
	chunks []*chunk // oldest first; the last one takes appends
	spare  *chunk   // a dropped chunk's storage, for the next one
	names  names
	kinds  []kindCount // records appended, by kind
	snaps  []*snapshot // windows being paged through, newest last
}

// maxSnapshots bounds the windows paged through at once, one per
// reconciler sharing the log.
const maxSnapshots = 4

// chunk holds records in the order they were appended. Nothing in it is a
// pointer: the entries hold offsets into the arena, which holds their
// bytes, so that however many records the log keeps, the garbage collector
// has a few objects per chunk to mark, and writers do not stall behind it.
type chunk struct {
	entries                []entry
	arena                  []byte
	minWritten, maxWritten int64 // unix nanoseconds
}

// entry is one record, its small strings interned as indices into names,
// the others as spans of its chunk's arena.
type entry struct {
	written, time                     int64 // unix nanoseconds
	id, err, req                      span  // req is the encoded request, or empty
	attempt                           int32
	dc, origin, target, stage, status uint32
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

// New returns a Log that keeps at most maxRecords records, and at least
// seven eighths of that once it is full, dropping the oldest first; 0
// selects DefaultMaxRecords.
func New(maxRecords int) *Log {
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	size := min(max(maxRecords/8, 1), maxChunk)
	return &Log{chunkSize: size, maxChunks: (maxRecords + size - 1) / size,
		names: names{index: map[string]uint32{}}}
}

// Append implements dcsync.AuditLog.
func (l *Log) Append(_ context.Context, recs []dcsync.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := 0 // index in l.kinds of the last record's kind
	for i := range recs {
		r := &recs[i]
		c := l.tail()
		e := entry{id: c.put(r.ID), err: c.put(r.Error), written: r.Written.UnixNano(),
			time: r.Time.UnixNano(), attempt: int32(r.Attempt),
			dc: l.names.of(r.DC), origin: l.names.of(r.Origin), target: l.names.of(r.Target),
			stage: l.names.of(string(r.Stage)), status: l.names.of(string(r.Status))}
		if r.Request != nil {
			off := len(c.arena)
			c.arena = appendRequest(c.arena, r.Request)
			e.req = span{uint32(off), uint32(len(c.arena) - off)}
		}
		if len(c.entries) == 0 || e.written < c.minWritten {
			c.minWritten = e.written
		}
		if len(c.entries) == 0 || e.written > c.maxWritten {
			c.maxWritten = e.written
		}
		c.entries = append(c.entries, e)
		k = l.count([3]uint32{e.dc, e.stage, e.status}, k)
	}
	return nil
}

// count adds a record of kind to the counts and returns the kind's index;
// hint is where to look first.
func (l *Log) count(kind [3]uint32, hint int) int {
	if hint < len(l.kinds) && l.kinds[hint].kind == kind {
		l.kinds[hint].n++
		return hint
	}
	for i := range l.kinds {
		if l.kinds[i].kind == kind {
			l.kinds[i].n++
			return i
		}
	}
	l.kinds = append(l.kinds, kindCount{kind, 1})
	return len(l.kinds) - 1
}

// tail returns the chunk that takes the next record, starting a new one,
// and dropping the oldest, when it is full.
func (l *Log) tail() *chunk {
	if n := len(l.chunks); n > 0 && len(l.chunks[n-1].entries) < l.chunkSize {
		return l.chunks[n-1]
	}
	if len(l.chunks) == l.maxChunks {
		old := l.chunks[0]
		l.chunks = slices.Delete(l.chunks, 0, 1)
		if !slices.ContainsFunc(l.snaps, func(s *snapshot) bool { return slices.Contains(s.chunks, old) }) {
			old.entries, old.arena = old.entries[:0], old.arena[:0]
			l.spare = old
		}
	}
	c := l.spare
	l.spare = nil
	if c == nil {
		c = &chunk{entries: make([]entry, 0, l.chunkSize), arena: make([]byte, 0, l.chunkSize*128)}
	}
	l.chunks = append(l.chunks, c)
	return c
}

// Trails implements dcsync.AuditLog. The first page of a window groups its
// records; later pages of the same window read from that grouping, so a
// pass sees the records appended up to its first page, and later ones on
// its next pass.
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

// ref locates a record: entry i of chunk c of the snapshot.
type ref struct{ c, i int32 }

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
			if e.origin != o || e.written < from || e.written >= to {
				continue
			}
			t, seen := byID[string(c.bytes(e.id))]
			if !seen {
				id := string(c.bytes(e.id))
				t = int32(len(s.trails))
				byID[id] = t
				s.trails = append(s.trails, strail{key: key{e.written, id}})
			}
			s.trails[t].last++ // counts records until the layout below
			found, trailOf = append(found, ref{ci, int32(i)}), append(trailOf, t)
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
		out[k] = l.record(c, &c.entries[r.i], id)
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

// record returns e, of chunk c, as the record of write id.
func (l *Log) record(c *chunk, e *entry, id string) dcsync.Record {
	n := l.names.list
	r := dcsync.Record{ID: id, DC: n[e.dc], Origin: n[e.origin], Stage: dcsync.Stage(n[e.stage]),
		Status: dcsync.Status(n[e.status]), Target: n[e.target], Attempt: int(e.attempt),
		Error: string(c.bytes(e.err)), Written: time.Unix(0, e.written), Time: time.Unix(0, e.time)}
	if e.req.n > 0 {
		r.Request = decodeRequest(c.bytes(e.req))
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
			if string(c.bytes(c.entries[i].id)) == id {
				out = append(out, l.record(c, &c.entries[i], id))
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
	n := 0
	for _, c := range l.chunks {
		n += len(c.entries)
	}
	return n
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
