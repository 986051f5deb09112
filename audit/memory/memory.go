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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
)

// DefaultMaxWrites is how many writes' trails a Log keeps by default.
const DefaultMaxWrites = 1 << 18

// Log is an in-memory audit log. Create it with New.
type Log struct {
	maxWrites int

	mu       sync.Mutex
	trails   map[string]*trail   // by request ID
	byOrigin map[string][]*trail // each sorted by (Written, ID)
	counts   map[Tally]int
}

type trail struct {
	id      string
	written time.Time
	recs    []dcsync.Record
}

// Tally names a kind of record for Counts.
type Tally struct {
	DC     string
	Stage  dcsync.Stage
	Status dcsync.Status
}

// New returns a Log that keeps the trails of at most maxWrites writes,
// dropping the oldest first; 0 selects DefaultMaxWrites.
func New(maxWrites int) *Log {
	if maxWrites <= 0 {
		maxWrites = DefaultMaxWrites
	}
	return &Log{maxWrites: maxWrites, trails: map[string]*trail{},
		byOrigin: map[string][]*trail{}, counts: map[Tally]int{}}
}

// Append implements dcsync.AuditLog.
func (l *Log) Append(_ context.Context, recs []dcsync.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t *trail
	for _, r := range recs {
		l.counts[Tally{r.DC, r.Stage, r.Status}]++
		if t == nil || t.id != r.ID { // a batch often holds runs of one write
			if t = l.trails[r.ID]; t == nil {
				// A write's trail takes about four records: one allocation.
				t = &trail{id: r.ID, written: r.Written, recs: make([]dcsync.Record, 0, 4)}
				l.trails[r.ID] = t
				l.insert(r.Origin, t)
			}
		}
		t.recs = append(t.recs, r)
	}
	for len(l.trails) > l.maxWrites {
		l.evictOldest()
	}
	return nil
}

// insert places t in its origin's list, which stays sorted by (written, id).
// Writes mostly arrive in order, so this is mostly an append.
func (l *Log) insert(origin string, t *trail) {
	list := l.byOrigin[origin]
	n := len(list)
	if n == 0 || less(list[n-1], t.written, t.id) {
		l.byOrigin[origin] = append(list, t)
		return
	}
	i, _ := slices.BinarySearchFunc(list, t, func(a, b *trail) int {
		if less(a, b.written, b.id) {
			return -1
		}
		return 1
	})
	l.byOrigin[origin] = slices.Insert(list, i, t)
}

// less reports whether a sorts before (written, id).
func less(a *trail, written time.Time, id string) bool {
	if !a.written.Equal(written) {
		return a.written.Before(written)
	}
	return a.id < id
}

// evictOldest drops the trail with the oldest written time of all origins.
func (l *Log) evictOldest() {
	var origin string
	var oldest *trail
	for o, list := range l.byOrigin {
		if len(list) > 0 && (oldest == nil || list[0].written.Before(oldest.written)) {
			origin, oldest = o, list[0]
		}
	}
	if oldest == nil {
		return
	}
	l.byOrigin[origin][0] = nil
	l.byOrigin[origin] = l.byOrigin[origin][1:]
	delete(l.trails, oldest.id)
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
	list := l.byOrigin[q.Origin]
	// First trail at or after (afterTime, afterID), past the cursor itself.
	i, _ := slices.BinarySearchFunc(list, afterTime, func(a *trail, t time.Time) int {
		if a.written.Before(t) {
			return -1
		}
		return 1
	})
	for i < len(list) && afterID != "" && !less(&trail{written: afterTime, id: afterID}, list[i].written, list[i].id) {
		i++
	}
	var page dcsync.TrailPage
	for ; i < len(list) && list[i].written.Before(q.To); i++ {
		if len(page.Trails) == limit {
			page.Next = cursor(list[i-1].written, list[i-1].id)
			break
		}
		t := list[i]
		page.Trails = append(page.Trails, dcsync.Trail{ID: t.id, Records: slices.Clone(t.recs)})
	}
	return page, nil
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
	if t := l.trails[id]; t != nil {
		return slices.Clone(t.recs)
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
	return len(l.trails)
}
