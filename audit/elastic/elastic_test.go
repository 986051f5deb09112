package elastic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }

var quiet = slog.New(slog.DiscardHandler)

// newLog returns a Log on the test Elasticsearch under a prefix of the
// test's own, closed when the test ends. cfg's zero fields get test values.
func newLog(t testing.TB, cfg elastic.Config) *elastic.Log {
	t.Helper()
	url := testserver.Elastic(t)
	if cfg.URLs == nil {
		cfg.URLs = []string{url}
	}
	if cfg.IndexPrefix == "" {
		cfg.IndexPrefix = testserver.IndexPrefix(t, url)
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	l, err := elastic.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func flush(t testing.TB, l *elastic.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 25, 23, 59, 50, 0, time.UTC) // windows cross midnight: two daily indices

func rec(id, dc, origin string, stage dcsync.Stage, written time.Time) dcsync.Record {
	return dcsync.Record{ID: id, DC: dc, Origin: origin, Stage: stage, Status: dcsync.StatusOK,
		Attempt: 1, Written: written, Time: written.Add(time.Millisecond)}
}

func TestTrailsPagesThroughAWindow(t *testing.T) {
	ctx := context.Background()
	l := newLog(t, elastic.Config{})
	var recs []dcsync.Record
	for i := range 50 {
		w := t0.Add(time.Duration(i%25) * time.Second) // two writes per second, out of order
		recs = append(recs, rec(fmt.Sprintf("w%02d", i), "a", "a", dcsync.StageProcess, w))
		recs = append(recs, rec(fmt.Sprintf("x%02d", i), "b", "b", dcsync.StageProcess, w)) // other origin
	}
	l.Append(ctx, recs)
	l.Append(ctx, []dcsync.Record{rec("w07", "b", "a", dcsync.StageApply, t0.Add(7*time.Second))})
	flush(t, l)

	q := dcsync.TrailQuery{Origin: "a", From: t0.Add(5 * time.Second), To: t0.Add(20 * time.Second), Limit: 7}
	var got []string
	var prev time.Time
	for pages := 0; ; pages++ {
		page, err := l.Trails(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page.Trails {
			w := tr.Records[0].Written
			if w.Before(prev) || w.Before(q.From) || !w.Before(q.To) {
				t.Fatalf("trail %s written %v out of order or window", tr.ID, w)
			}
			prev = w
			got = append(got, tr.ID)
			if tr.ID == "w07" && (len(tr.Records) != 2 || !tr.Applied("b")) {
				t.Fatalf("trail w07 lacks the peer's record: %+v", tr.Records)
			}
		}
		if page.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q.After = page.Next
	}
	if len(got) != 30 { // seconds 5..19, two writes each
		t.Fatalf("got %d trails, want 30: %v", len(got), got)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s returned twice", id)
		}
		seen[id] = true
	}
	if _, err := l.Trails(ctx, dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Hour), After: "garbage"}); err == nil {
		t.Fatal("a malformed cursor was accepted")
	}
}

// TestTrailsKeepsLongTrailsWhole pages with a limit whose hits cannot hold
// the middle write's records: every trail still comes whole, once.
func TestTrailsKeepsLongTrailsWhole(t *testing.T) {
	ctx := context.Background()
	l := newLog(t, elastic.Config{})
	want := map[string]int{"a": 3, "b": 40, "c": 3, "d": 1}
	var recs []dcsync.Record
	for i, id := range []string{"a", "b", "c", "d"} {
		w := t0.Add(time.Duration(i) * time.Second)
		for n := range want[id] {
			r := rec(id, "a", "a", dcsync.StageReship, w)
			r.Attempt = n + 1
			recs = append(recs, r)
		}
	}
	l.Append(ctx, recs)
	flush(t, l)
	got := map[string]int{}
	q := dcsync.TrailQuery{Origin: "a", From: t0, To: t0.Add(time.Minute), Limit: 1}
	for pages := 0; ; pages++ {
		page, err := l.Trails(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page.Trails {
			if _, dup := got[tr.ID]; dup {
				t.Fatalf("%s returned twice", tr.ID)
			}
			got[tr.ID] = len(tr.Records)
		}
		if page.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q.After = page.Next
	}
	if !maps.Equal(got, want) {
		t.Fatalf("records per trail %v, want %v", got, want)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	ctx := context.Background()
	l := newLog(t, elastic.Config{})
	req := &dcsync.Request{ID: "r1", Origin: "unicom", Key: "user:1", Op: "set",
		Payload: []byte("\x00binary\xff"), Version: 1<<63 + 12345, Header: map[string]string{"tenant": "t1"}}
	w := t0.Add(123456789 * time.Nanosecond)
	process := rec("r1", "unicom", "unicom", dcsync.StageProcess, w)
	process.Request = req
	failed := dcsync.Record{ID: "r1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship,
		Status: dcsync.StatusFailed, Target: "telecom", Attempt: 2, Error: `timeout "quoted" ü`,
		Written: w, Time: w.Add(2 * time.Second)}
	l.Append(ctx, []dcsync.Record{process, failed})
	l.Append(ctx, []dcsync.Record{failed}) // appended twice: stored once
	flush(t, l)

	got, err := l.Records(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2: %+v", len(got), got)
	}
	gotReq := got[0].Request
	if gotReq == nil || gotReq.Version != req.Version || string(gotReq.Payload) != string(req.Payload) ||
		gotReq.Header["tenant"] != "t1" || gotReq.Key != req.Key || gotReq.Op != req.Op {
		t.Fatalf("request came back as %+v, want %+v", gotReq, req)
	}
	for i, want := range []dcsync.Record{process, failed} {
		if !sameRecord(got[i], want) {
			t.Fatalf("record %d came back as %+v, want %+v", i, got[i], want)
		}
	}
	page, err := l.Trails(ctx, dcsync.TrailQuery{Origin: "unicom", From: t0, To: t0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Trails) != 1 || page.Trails[0].Source() == nil || page.Trails[0].Source().Version != req.Version {
		t.Fatalf("trail lacks its source: %+v", page)
	}
}

// sameRecord compares records but their requests, and times as instants:
// they come back in UTC.
func sameRecord(a, b dcsync.Record) bool {
	a.Request, b.Request = nil, nil
	if !a.Time.Equal(b.Time) || !a.Written.Equal(b.Written) {
		return false
	}
	a.Time, b.Time, a.Written, b.Written = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func TestMappingIsExplicit(t *testing.T) {
	ctx := context.Background()
	prefix := testserver.IndexPrefix(t, testserver.Elastic(t))
	l := newLog(t, elastic.Config{IndexPrefix: prefix})
	l.Append(ctx, []dcsync.Record{rec("m1", "a", "a", dcsync.StageProcess, t0)})
	flush(t, l)
	index := prefix + "-2026.11.25"

	var mapping map[string]struct {
		Mappings struct {
			Dynamic    string                     `json:"dynamic"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"mappings"`
	}
	get(t, l, "/"+index+"/_mapping", &mapping)
	m := mapping[index].Mappings
	for field, want := range map[string]string{
		"id": `{"type":"keyword"}`, "dc": `{"type":"keyword"}`, "origin": `{"type":"keyword"}`,
		"stage": `{"type":"keyword"}`, "status": `{"type":"keyword"}`, "target": `{"type":"keyword"}`,
		"attempt": `{"type":"integer"}`, "written": `{"type":"date_nanos"}`, "time": `{"type":"date_nanos"}`,
		"request": `{"type":"object","enabled":false}`,
	} {
		if string(m.Properties[field]) != want {
			t.Errorf("mapping of %s = %s, want %s", field, m.Properties[field], want)
		}
	}
	if m.Dynamic != "strict" {
		t.Errorf("dynamic = %q, want strict", m.Dynamic)
	}
	var aliases map[string]any
	get(t, l, "/_alias/"+prefix, &aliases)
	if _, ok := aliases[index]; !ok {
		t.Errorf("alias %s does not cover %s: %v", prefix, index, aliases)
	}
	var settings map[string]struct {
		Settings struct {
			Index struct {
				Sort     struct{ Field []string }
				Translog struct{ Durability string }
			}
		}
	}
	get(t, l, "/"+index+"/_settings", &settings)
	if f := settings[index].Settings.Index.Sort.Field; len(f) != 2 || f[0] != "written" || f[1] != "id" {
		t.Errorf("index sort = %v, want [written id]", f)
	}
	if d := settings[index].Settings.Index.Translog.Durability; d != "request" {
		t.Errorf("translog durability = %q, want request", d)
	}
}

// get decodes the answer to a GET of path.
func get(t *testing.T, l *elastic.Log, path string, v any) {
	t.Helper()
	res, err := l.Client().PerformRequest(context.Background(), olivere.PerformRequestOptions{Method: "GET", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(res.Body, v); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a log destination safe for the bulk processor's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRefusedRecordIsCountedAndNamed has Elasticsearch refuse one record of
// a bulk request (date_nanos refuses times before 1970): the trimmed answer
// carries only statuses, and the Log must still name the record it refused
// and store the others.
func TestRefusedRecordIsCountedAndNamed(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	l := newLog(t, elastic.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	bad := rec("bad", "a", "a", dcsync.StageApply, t0)
	bad.Time = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	l.Append(ctx, []dcsync.Record{rec("ok1", "a", "a", dcsync.StageProcess, t0), bad,
		rec("ok2", "a", "a", dcsync.StageProcess, t0)})
	flush(t, l)
	if s := l.Stats(); s.Rejected != 1 || s.Indexed != 2 {
		t.Fatalf("stats %+v, want 2 indexed and 1 rejected", s)
	}
	if out := logs.String(); !strings.Contains(out, "id=bad.") || !strings.Contains(out, "audit record refused") {
		t.Fatalf("the refusal does not name the record:\n%s", out)
	}
	for _, id := range []string{"ok1", "ok2"} {
		if got, err := l.Records(ctx, id); err != nil || len(got) != 1 {
			t.Fatalf("records of %s: %v, %v", id, got, err)
		}
	}
}
