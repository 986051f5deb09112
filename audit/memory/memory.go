// Package memory is an in-process dcsync.AuditLog: the embedded default, and
// the audit log of tests and of the quickstart. It keeps the trails of the
// most recent writes, up to a bound, and reads a time window in time
// proportional to the window, not to what it holds.
package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
)

// DefaultMaxWrites is how many writes' trails a Log keeps by default.
const DefaultMaxWrites = 1 << 18

// Log is an in-memory audit log. Create it with New.
//
// It keeps trails in two generations of at most maxWrites/2 writes each;
// when the current one is full, the older one is dropped whole. Dropping
// whole maps, rather than deleting entries one by one, keeps lookups of new
// IDs from probing through deleted slots.
type Log struct {
	genSize int

	mu     sync.Mutex
	gens   [2]*generation // current, older
	counts map[Tally]int
}

type generation struct {
	trails   map[string]*trail   // by request ID
	byOrigin map[string][]*trail // each sorted by (Written, ID)
}

func newGeneration(size int) *generation {
	return &generation{trails: make(map[string]*trail, size), byOrigin: map[string][]*trail{}}
}

// trail holds a write's records compactly: what all records of a write
// share is stored once, and the first few records live in the trail itself,
// so a write costs one allocation.
type trail struct {
	id, origin string
	written    time.Time
	entries    []entry
	inline     [4]entry
}

// entry is what one record adds to its trail.
type entry struct {
	dc, target, err string
	stage           dcsync.Stage
	status          dcsync.Status
	attempt         int32
	time            int64 // unix nanoseconds
	req             *dcsync.Request
}

func (t *trail) add(r *dcsync.Record) {
	if t.entries == nil {
		t.entries = t.inline[:0]
	}
	t.entries = append(t.entries, entry{dc: r.DC, target: r.Target, err: r.Error, stage: r.Stage,
		status: r.Status, attempt: int32(r.Attempt), time: r.Time.UnixNano(), req: r.Request})
}

func (t *trail) records() []dcsync.Record {
	out := make([]dcsync.Record, len(t.entries))
	for i, e := range t.entries {
		out[i] = dcsync.Record{ID: t.id, DC: e.dc, Origin: t.origin, Stage: e.stage, Status: e.status,
			Target: e.target, Attempt: int(e.attempt), Error: e.err, Written: t.written,
			Time: time.Unix(0, e.time), Request: e.req}
	}
	return out
}

// Tally names a kind of record for Counts.
type Tally struct {
	DC     string
	Stage  dcsync.Stage
	Status dcsync.Status
}

// New returns a Log that keeps the trails of at most maxWrites writes
// (and at least the latest maxWrites/2), dropping the oldest first; 0
// selects DefaultMaxWrites.
func New(maxWrites int) *Log {
	if maxWrites <= 0 {
		maxWrites = DefaultMaxWrites
	}
	size := max(maxWrites/2, 1)
	return &Log{genSize: size, gens: [2]*generation{newGeneration(size), newGeneration(0)},
		counts: map[Tally]int{}}
}

// Append implements dcsync.AuditLog.
func (l *Log) Append(_ context.Context, recs []dcsync.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t *trail
	var tally Tally
	run := 0 // records of the same kind seen in a row, counted at once
	for i := range recs {
		r := &recs[i]
		if k := (Tally{r.DC, r.Stage, r.Status}); k != tally {
			if run > 0 {
				l.counts[tally] += run
			}
			tally, run = k, 0
		}
		run++
		if t == nil || t.id != r.ID { // a batch often holds runs of one write
			t = l.trail(r)
		}
		t.add(r)
	}
	if run > 0 {
		l.counts[tally] += run
	}
	return nil
}

// trail returns the trail r belongs to, created in the current generation
// when it is new.
func (l *Log) trail(r *dcsync.Record) *trail {
	for _, g := range l.gens {
		if t := g.trails[r.ID]; t != nil {
			return t
		}
	}
	if len(l.gens[0].trails) >= l.genSize {
		l.gens[1], l.gens[0] = l.gens[0], newGeneration(l.genSize)
	}
	t := &trail{id: r.ID, origin: r.Origin, written: r.Written}
	l.gens[0].trails[r.ID] = t
	l.gens[0].insert(r.Origin, t)
	return t
}

// insert places t in its origin's list, which stays sorted by (written, id).
// Writes mostly arrive in order, so this is mostly an append.
func (g *generation) insert(origin string, t *trail) {
	list := g.byOrigin[origin]
	n := len(list)
	if n == 0 || less(list[n-1], t.written, t.id) {
		g.byOrigin[origin] = append(list, t)
		return
	}
	i, _ := slices.BinarySearchFunc(list, t, func(a, b *trail) int {
		if less(a, b.written, b.id) {
			return -1
		}
		return 1
	})
	g.byOrigin[origin] = slices.Insert(list, i, t)
}

// less reports whether a sorts before (written, id).
func less(a *trail, written time.Time, id string) bool {
	if !a.written.Equal(written) {
		return a.written.Before(written)
	}
	return a.id < id
}

// after returns the part of g's list for origin that sorts after
// (written, id); an empty id means at or after written.
func (g *generation) after(origin string, written time.Time, id string) []*trail {
	list := g.byOrigin[origin]
	i := sort.Search(len(list), func(i int) bool {
		if id == "" {
			return !list[i].written.Before(written)
		}
		return !less(list[i], written, id) && (list[i].id != id || !list[i].written.Equal(written))
	})
	return list[i:]
}

// Trails implements dcsync.AuditLog.
func (l *Log) Trails(_ context.Context, q dcsync.TrailQuery) (dcsync.TrailPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	afterTime, afterID := q.From, ""
	if q.After != "" {
		var err error
		if afterTime, afterID, err = parseCursor(q.After); err != nil {
			return dcsync.TrailPage{}, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Merge the two generations' sorted lists.
	a := l.gens[0].after(q.Origin, afterTime, afterID)
	b := l.gens[1].after(q.Origin, afterTime, afterID)
	var page dcsync.TrailPage
	for {
		var t *trail
		switch {
		case len(a) > 0 && (len(b) == 0 || less(a[0], b[0].written, b[0].id)):
			t, a = a[0], a[1:]
		case len(b) > 0:
			t, b = b[0], b[1:]
		}
		if t == nil || !t.written.Before(q.To) {
			return page, nil
		}
		if len(page.Trails) == limit {
			last := page.Trails[limit-1]
			page.Next = cursor(last.Records[0].Written, last.ID)
			return page, nil
		}
		page.Trails = append(page.Trails, dcsync.Trail{ID: t.id, Records: t.records()})
	}
}

func cursor(t time.Time, id string) string {
	return strconv.FormatInt(t.UnixNano(), 10) + "/" + id
}

func parseCursor(c string) (time.Time, string, error) {
	ns, id, ok := strings.Cut(c, "/")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", fmt.Errorf("memory: malformed cursor %q", c)
	}
	return time.Unix(0, n), id, nil
}

// Records returns the trail of one write, in the order it was logged.
func (l *Log) Records(id string) []dcsync.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.gens {
		if t := g.trails[id]; t != nil {
			return t.records()
		}
	}
	return nil
}

// Counts returns how many records of each kind were ever appended.
func (l *Log) Counts() map[Tally]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.counts)
}

// Len returns how many writes' trails the log holds.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.gens[0].trails) + len(l.gens[1].trails)
}
