package elastic

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
)

const (
	// defaultLimit is the number of trails of a page when the query sets none.
	defaultLimit = 1000
	// pageDocs is how many documents one search of Trails asks for.
	pageDocs = 500
	// maxHits is Elasticsearch's default index.max_result_window.
	maxHits = 10000
	// maxWindowDays is the widest window read day by day; a wider one reads
	// every daily index through the pattern.
	maxWindowDays = 62
)

// Trails implements dcsync.AuditLog. It reads only the daily indices of
// the window, the documents of q.Origin's writes in written order, a
// second at a time: a document's writes share a second, so the documents
// of the seconds it has read hold every record of their writes. A page
// holds the trails of whole seconds, at least q.Limit of them when the
// window has as many, and more when one second holds more. A document
// whose stored writes do not decode gives its records without their
// Request, counted in TrailPage.Unreadable and logged.
func (l *Log) Trails(ctx context.Context, q dcsync.TrailQuery) (dcsync.TrailPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	var page dcsync.TrailPage
	lo := q.From.Truncate(time.Second)
	if q.After != "" {
		at, err := parseCursor(q.After)
		if err != nil {
			return page, err
		}
		lo = maxTime(lo, at)
	}
	if !q.To.After(q.From) {
		return page, nil
	}
	byID := map[string]int{}
	for lo.Before(q.To) && len(page.Trails) < limit {
		docs, hi, err := l.seconds(ctx, elastic.NewTermQuery("origin", q.Origin), lo, q.To)
		if err != nil {
			return page, err
		}
		for i := range docs {
			d := &docs[i]
			page.Unreadable += d.lost
			reqs, err := d.requests()
			if err != nil {
				// Its records still say which writes reached which
				// stage; the writes they carried are lost to the reader.
				page.Unreadable += len(d.IDs)
				l.log.Error("elastic: audit document unreadable", "origin", d.Origin, "stage", d.Stage,
					"written", d.Written, "records", len(d.IDs), "err", err)
				reqs = nil
			}
			for k := range d.IDs {
				r := d.record(k, reqs)
				if r.Written.Before(q.From) || !r.Written.Before(q.To) {
					continue
				}
				t, ok := byID[r.ID]
				if !ok {
					t = len(page.Trails)
					byID[r.ID] = t
					page.Trails = append(page.Trails, dcsync.Trail{ID: r.ID})
				}
				page.Trails[t].Records = append(page.Trails[t].Records, r)
			}
		}
		lo = hi
	}
	if lo.Before(q.To) {
		page.Next = cursor(lo)
	}
	for i := range page.Trails {
		sortByTime(page.Trails[i].Records)
	}
	slices.SortFunc(page.Trails, func(a, b dcsync.Trail) int {
		if c := a.Records[0].Written.Compare(b.Records[0].Written); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return page, nil
}

// seconds returns the documents matching filter written in whole seconds
// from lo (a whole second) on, before to, and the end of what it read:
// one search of pageDocs documents in written order, less those of the
// last second it reached unless that is all it read, which it then reads
// whole.
func (l *Log) seconds(ctx context.Context, filter elastic.Query, lo, to time.Time) ([]source, time.Time, error) {
	s := elastic.NewSearchSource().
		Query(elastic.NewBoolQuery().Filter(filter, writtenIn(lo, to))).
		Sort("written", true).Size(pageDocs).TrackTotalHits(false)
	docs, err := l.search(ctx, l.windowIndices(lo, to), s)
	if err != nil || len(docs) < pageDocs {
		return docs, to, err
	}
	last := docs[len(docs)-1].Written.Truncate(time.Second)
	if last.After(lo) {
		keep := slices.IndexFunc(docs, func(d source) bool { return !d.Written.Before(last) })
		return docs[:keep], last, nil
	}
	hi := minTime(lo.Add(time.Second), to)
	docs, err = l.all(ctx, filter, lo, hi, nil)
	return docs, hi, err
}

// all returns every document matching filter written in [from, to),
// halving the range while a search finds as many as it may return.
func (l *Log) all(ctx context.Context, filter elastic.Query, from, to time.Time, fields []string) ([]source, error) {
	s := elastic.NewSearchSource().Query(elastic.NewBoolQuery().Filter(filter, writtenIn(from, to))).
		Size(maxHits).TrackTotalHits(false)
	if fields != nil {
		s = s.FetchSourceIncludeExclude(fields, nil)
	}
	docs, err := l.search(ctx, l.windowIndices(from, to), s)
	if err != nil || len(docs) < maxHits {
		return docs, err
	}
	if to.Sub(from) <= 1 {
		return nil, fmt.Errorf("elastic: more than %d documents written at %v", maxHits, from)
	}
	mid := from.Add(to.Sub(from) / 2)
	a, err := l.all(ctx, filter, from, mid, fields)
	if err != nil {
		return nil, err
	}
	b, err := l.all(ctx, filter, mid, to, fields)
	return append(a, b...), err
}

func writtenIn(from, to time.Time) elastic.Query {
	return elastic.NewRangeQuery("written").Gte(formatTime(from)).Lt(formatTime(to))
}

// setFilter is the filter of the documents a SetQuery selects.
func setFilter(q dcsync.SetQuery) elastic.Query {
	status := q.Status
	if status == "" {
		status = dcsync.StatusOK
	}
	return elastic.NewBoolQuery().Filter(elastic.NewTermQuery("dc", q.DC), elastic.NewTermQuery("origin", q.Origin),
		elastic.NewTermQuery("stage", string(q.Stage)), elastic.NewTermQuery("status", string(status)))
}

// Digests implements dcsync.AuditLog. The seconds wholly inside the window
// add up the count and hash sum each document stores, reading nothing else
// of it; only the documents of a second the window cuts are read write by
// write.
func (l *Log) Digests(ctx context.Context, q dcsync.SetQuery) ([]dcsync.Digest, error) {
	if !q.To.After(q.From) {
		return nil, nil
	}
	filter := setFilter(q)
	by := map[int64]*dcsync.Digest{}
	add := func(sec int64) *dcsync.Digest {
		d := by[sec]
		if d == nil {
			d = &dcsync.Digest{Second: sec}
			by[sec] = d
		}
		return d
	}
	// The whole seconds [lo, hi), and the edges the window cuts.
	fromSec, hi := q.From.Truncate(time.Second), q.To.Truncate(time.Second)
	lo := fromSec
	if lo.Before(q.From) {
		lo = lo.Add(time.Second)
	}
	var edges [][2]time.Time
	if lo.After(hi) { // From and To cut one second
		edges = append(edges, [2]time.Time{fromSec, q.To})
	} else {
		if fromSec.Before(lo) {
			edges = append(edges, [2]time.Time{fromSec, lo})
		}
		if hi.Before(q.To) {
			edges = append(edges, [2]time.Time{hi, q.To})
		}
	}
	if lo.Before(hi) {
		docs, err := l.all(ctx, filter, lo, hi, []string{"written", "x.n", "x.h"})
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			g := add(d.Written.Unix())
			g.Count += d.X.N
			g.Sum += d.X.H
		}
	}
	for _, edge := range edges {
		ids, written, err := l.writes(ctx, filter, edge[0], edge[1], q.From, q.To)
		if err != nil {
			return nil, err
		}
		for i, id := range ids {
			add(written[i].Unix()).Add(id)
		}
	}
	out := make([]dcsync.Digest, 0, len(by))
	for _, d := range by {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b dcsync.Digest) int { return cmp.Compare(a.Second, b.Second) })
	return out, nil
}

// writes returns the IDs and written times of the writes of the documents
// matching filter written in [lo, hi) whose own written time is in
// [from, to).
func (l *Log) writes(ctx context.Context, filter elastic.Query, lo, hi, from, to time.Time) ([]string, []time.Time, error) {
	docs, err := l.all(ctx, filter, lo, hi, []string{"written", "ids", "x.n", "x.p", "x.w"})
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	var written []time.Time
	for i := range docs {
		d := &docs[i]
		for k, id := range d.IDs {
			if w := d.written(k); !w.Before(from) && w.Before(to) {
				ids, written = append(ids, id), append(written, w)
			}
		}
	}
	return ids, written, nil
}

// IDs implements dcsync.AuditLog.
func (l *Log) IDs(ctx context.Context, q dcsync.SetQuery) ([]string, error) {
	if !q.To.After(q.From) {
		return nil, nil
	}
	ids, _, err := l.writes(ctx, setFilter(q), q.From.Truncate(time.Second), q.To, q.From, q.To)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(ids))
	return slices.DeleteFunc(ids, func(id string) bool {
		dup := seen[id]
		seen[id] = true
		return dup
	}), nil
}

// Records returns every record of one write, from every datacenter, in the
// order they happened, with one search. It reads every daily index: it is
// for operators tracing a request, not for the reconciler.
//
// A write whose ID is a UUIDv7 accepted in the millisecond of its
// timestamp — every ID dcsync makes — is found by time: its documents are
// those whose writes, all of one second, began in that second before the
// millisecond ended (written, which the indices are sorted on) and ended
// at or after it began (last); Records then picks the write out of their
// packed IDs. Any other ID is found by its keyword (ids), as is every
// write of a document written before template version 4.
func (l *Log) Records(ctx context.Context, id string) ([]dcsync.Record, error) {
	find := elastic.NewBoolQuery().Should(elastic.NewTermQuery("ids", packID(id))).MinimumNumberShouldMatch(1)
	if u, ok := canonicalUUID(id); ok && isV7(u) {
		ms := time.UnixMilli(uuidMs(u))
		find.Should(elastic.NewBoolQuery().Filter(
			elastic.NewRangeQuery("written").Gte(formatTime(ms.Truncate(time.Second))).Lt(formatTime(ms.Add(time.Millisecond))),
			elastic.NewRangeQuery("last").Gte(formatTime(ms))))
	}
	docs, err := l.search(ctx, []string{l.prefix + "-*"}, elastic.NewSearchSource().
		Query(elastic.NewBoolQuery().Filter(find)).
		Size(maxHits).TrackTotalHits(false))
	if err != nil {
		return nil, err
	}
	var recs []dcsync.Record
	for i := range docs {
		d := &docs[i]
		k := slices.Index(d.IDs, id)
		if k < 0 {
			continue
		}
		reqs, err := d.requests()
		if err != nil {
			return nil, err
		}
		recs = append(recs, d.record(k, reqs))
	}
	sortByTime(recs)
	return recs, nil
}

// search runs the search s over indices and decodes the documents of its
// hits. It decodes the response in one pass: the olivere SearchService
// would decode every hit twice.
func (l *Log) search(ctx context.Context, indices []string, s *elastic.SearchSource) ([]source, error) {
	filter := "hits.hits._source"
	if l.visited != nil {
		s = s.Profile(true)
		filter += ",profile.shards.searches.query.breakdown"
	}
	body, err := s.Source()
	if err != nil {
		return nil, fmt.Errorf("elastic: search: %w", err)
	}
	res, err := l.client.PerformRequest(ctx, elastic.PerformRequestOptions{
		Method: "POST",
		Path:   "/" + strings.Join(indices, ",") + "/_search",
		Params: url.Values{"ignore_unavailable": {"true"}, "allow_no_indices": {"true"},
			"filter_path": {filter}},
		Body: body,
	})
	if err != nil {
		return nil, fmt.Errorf("elastic: search: %w", err)
	}
	var result struct {
		Hits struct {
			Hits []struct {
				Source source `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
		Profile profile `json:"profile"`
	}
	if err := json.Unmarshal(res.Body, &result); err != nil {
		return nil, fmt.Errorf("elastic: decode search result: %w", err)
	}
	if l.visited != nil {
		l.visited.Add(result.Profile.visited())
	}
	docs := make([]source, 0, len(result.Hits.Hits))
	for i := range result.Hits.Hits {
		d := result.Hits.Hits[i].Source
		if err := d.unpack(); err != nil {
			// Its writes are lost to the reader: say so, count them
			// where a page can, and read on.
			l.log.Error("elastic: audit document unreadable", "origin", d.Origin, "stage", d.Stage,
				"written", d.Written, "records", d.X.N, "err", err)
			d.IDs, d.X.W, d.lost = nil, nil, max(d.X.N, 1)
		}
		if d.Written == nil {
			d.Written = &time.Time{}
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// profile is what a test reads of Elasticsearch's search profile.
type profile struct {
	Shards []struct {
		Searches []struct {
			Query []struct {
				Breakdown map[string]int64 `json:"breakdown"`
			} `json:"query"`
		} `json:"searches"`
	} `json:"shards"`
}

// visited returns the documents the profiled queries visited.
func (p *profile) visited() int64 {
	var n int64
	for _, sh := range p.Shards {
		for _, s := range sh.Searches {
			for _, q := range s.Query {
				n += q.Breakdown["next_doc_count"] + q.Breakdown["advance_count"]
			}
		}
	}
	return n
}

func sortByTime(recs []dcsync.Record) {
	slices.SortStableFunc(recs, func(a, b dcsync.Record) int { return a.Time.Compare(b.Time) })
}

// windowIndices names the daily indices of the records written in
// [from, to), or the pattern of them all for a window too wide to list.
func (l *Log) windowIndices(from, to time.Time) []string {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC()
	if from.Year() < 1970 || to.Sub(from) > maxWindowDays*24*time.Hour {
		return []string{l.prefix + "-*"}
	}
	var names []string
	for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
		names = append(names, dayIndex(l.prefix, d))
	}
	return names
}

// The range of date_nanos, which a query must stay in.
var (
	minNanos = time.Unix(0, 0)
	maxNanos = time.Unix(0, 1<<63-1)
)

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func formatTime(t time.Time) string {
	if t.Before(minNanos) {
		t = minNanos
	} else if t.After(maxNanos) {
		t = maxNanos
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// A cursor is where the next page starts: a whole second, in Unix
// nanoseconds.
func cursor(t time.Time) string { return "s" + strconv.FormatInt(t.UnixNano(), 10) }

func parseCursor(c string) (time.Time, error) {
	ns, ok := strings.CutPrefix(c, "s")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil {
		return time.Time{}, fmt.Errorf("elastic: malformed cursor %q", c)
	}
	return time.Unix(0, n), nil
}
