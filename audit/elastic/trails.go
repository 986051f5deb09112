package elastic

import (
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
	// initialPerTrail is the records per trail a Log assumes until a page
	// has shown the actual number, in hundredths: a write between two
	// datacenters leaves four records when all goes well.
	initialPerTrail = 400
	// maxHits is Elasticsearch's default index.max_result_window.
	maxHits = 10000
	// maxWindowDays is the widest window read day by day; a wider one reads
	// every daily index through the pattern.
	maxWindowDays = 62
)

// Trails implements dcsync.AuditLog. It reads the daily indices of the
// window only, the records of q.Origin's writes sorted by (written, id)
// after the cursor, and groups each write's adjacent records into its
// trail. A page holds at most q.Limit trails; a trail cut by the end of the
// hits is left to the next page, which starts after the last trail
// returned. The records of a write must share its Written time, as
// dcsync's records do.
func (l *Log) Trails(ctx context.Context, q dcsync.TrailQuery) (dcsync.TrailPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	var page dcsync.TrailPage
	// Ask for the records of a quarter more trails than the page holds, at
	// the number of records per trail the last page had: few hits are
	// fetched only to be left out, and few pages fall short.
	size := min(max(limit+1, int(int64(limit)*l.perTrail.Load()*5/400)), maxHits)
	// A later page starts its range at the cursor: what is before it, the
	// search need not even visit.
	from, after := q.From, []any(nil)
	if q.After != "" {
		at, id, err := parseCursor(q.After)
		if err != nil {
			return page, err
		}
		from, after = maxTime(from, at), []any{at.UnixNano(), id}
	}
	if !q.To.After(q.From) {
		return page, nil
	}
	hits, err := l.search(ctx, l.windowIndices(from, q.To), windowSearch(q.Origin, from, q.To, after, size))
	if err != nil {
		return page, err
	}
	full := len(hits) == size
	trails := group(hits)
	if len(trails) > 1 {
		l.perTrail.Store(int64(len(hits)) * 100 / int64(len(trails)))
	}
	if full && len(trails) > 0 {
		last := trails[len(trails)-1]
		if len(trails) == 1 { // one write with a page of records or more
			recs, err := l.records(ctx, []string{dayIndex(l.prefix, last.Records[0].Written)}, last.ID)
			if err != nil {
				return page, err
			}
			trails[0].Records = recs
		} else {
			trails = trails[:len(trails)-1] // may be cut short: the next page reads it whole
		}
	}
	if full || len(trails) > limit {
		trails = trails[:min(limit, len(trails))]
		t := trails[len(trails)-1]
		page.Next = cursor(t.Records[0].Written, t.ID)
	}
	for i := range trails {
		sortByTime(trails[i].Records)
	}
	page.Trails = trails
	return page, nil
}

// windowSearch is the search of a page of Trails: size records of origin's
// writes in [from, to), after the sort values after when not nil, in
// (written, id) order. That order is the indices' own, and total hits are
// not counted, so Elasticsearch stops at the size-th record of the window.
func windowSearch(origin string, from, to time.Time, after []any, size int) *elastic.SearchSource {
	s := elastic.NewSearchSource().
		Query(elastic.NewBoolQuery().Filter(
			elastic.NewTermQuery("origin", origin),
			elastic.NewRangeQuery("written").Gte(formatTime(from)).Lt(formatTime(to)))).
		Sort("written", true).Sort("id", true).Size(size).TrackTotalHits(false)
	if after != nil {
		s = s.SearchAfter(after...)
	}
	return s
}

// Records returns every record of one write, from every datacenter, in the
// order they happened. It reads every daily index: it is for operators
// tracing a request, not for the reconciler.
func (l *Log) Records(ctx context.Context, id string) ([]dcsync.Record, error) {
	return l.records(ctx, []string{l.prefix + "-*"}, id)
}

// records returns the records of one write in indices, in the order they
// happened.
func (l *Log) records(ctx context.Context, indices []string, id string) ([]dcsync.Record, error) {
	recs, err := l.search(ctx, indices, elastic.NewSearchSource().
		Query(elastic.NewBoolQuery().Filter(elastic.NewTermQuery("id", id))).
		Size(maxHits).TrackTotalHits(false))
	if err != nil {
		return nil, err
	}
	sortByTime(recs)
	return recs, nil
}

// search runs the search s over indices and decodes the records of its
// hits. It decodes the response in one pass, straight into records: the
// olivere SearchService would decode every hit twice.
func (l *Log) search(ctx context.Context, indices []string, s *elastic.SearchSource) ([]dcsync.Record, error) {
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
	recs := make([]dcsync.Record, len(result.Hits.Hits))
	for i := range result.Hits.Hits {
		recs[i] = result.Hits.Hits[i].Source.record()
	}
	return recs, nil
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

// group gathers runs of records of one write into trails.
func group(recs []dcsync.Record) []dcsync.Trail {
	var trails []dcsync.Trail
	for start := 0; start < len(recs); {
		end := start + 1
		for end < len(recs) && recs[end].ID == recs[start].ID {
			end++
		}
		trails = append(trails, dcsync.Trail{ID: recs[start].ID, Records: recs[start:end:end]})
		start = end
	}
	return trails
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

func formatTime(t time.Time) string {
	if t.Before(minNanos) {
		t = minNanos
	} else if t.After(maxNanos) {
		t = maxNanos
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// A cursor is the written time (Unix nanoseconds) and ID of the last trail
// of a page.
func cursor(t time.Time, id string) string {
	return strconv.FormatInt(t.UnixNano(), 10) + "/" + id
}

func parseCursor(c string) (time.Time, string, error) {
	ns, id, ok := strings.Cut(c, "/")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", fmt.Errorf("elastic: malformed cursor %q", c)
	}
	return time.Unix(0, n), id, nil
}
