package elastic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/audit/audittest"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }

var quiet = slog.New(slog.DiscardHandler)

// newLog returns a Log on the test Elasticsearch under a prefix of the
// test's own, closed when the test ends. cfg's zero fields get test values.
func newLog(t testing.TB, cfg esaudit.Config) *esaudit.Log {
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
	l, err := esaudit.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func flush(t testing.TB, l *esaudit.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a refresh after 100k records takes long on a loaded machine
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

func TestConformance(t *testing.T) {
	audittest.Run(t, audittest.Store{
		Open:  func(t *testing.T) dcsync.AuditLog { return newLog(t, esaudit.Config{}) },
		Flush: func(t *testing.T, l dcsync.AuditLog) { flush(t, l.(*esaudit.Log)) },
		Records: func(t *testing.T, l dcsync.AuditLog, id string) []dcsync.Record {
			recs, err := l.(*esaudit.Log).Records(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return recs
		},
	})
}

// TestRecordAppendedTwiceIsOneDocument: deterministic document IDs make a
// record sent twice (a replay, a retried bulk request) one document, which
// Records, by request ID, reads back whole.
func TestRecordAppendedTwiceIsOneDocument(t *testing.T) {
	ctx := context.Background()
	l := newLog(t, esaudit.Config{})
	w := t0.Add(123456789 * time.Nanosecond)
	process := rec("r1", "unicom", "unicom", dcsync.StageProcess, w)
	process.Request = &dcsync.Request{ID: "r1", Origin: "unicom", Key: "user:1", Version: 1}
	failed := dcsync.Record{ID: "r1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship,
		Status: dcsync.StatusFailed, Target: "telecom", Attempt: 2, Error: "timeout", Written: w, Time: w.Add(2 * time.Second)}
	l.Append(ctx, dcsync.PackRecords([]dcsync.Record{process, failed}))
	l.Append(ctx, dcsync.PackRecords([]dcsync.Record{failed}))
	flush(t, l)

	got, err := l.Records(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Request == nil || got[0].Request.Key != "user:1" {
		t.Fatalf("got %+v, want the two records, the first with its request", got)
	}
	for i, want := range []dcsync.Record{process, failed} {
		if !audittest.SameRecord(got[i], want) {
			t.Fatalf("record %d came back as %+v, want %+v", i, got[i], want)
		}
	}
}

func TestMappingIsExplicit(t *testing.T) {
	ctx := context.Background()
	prefix := testserver.IndexPrefix(t, testserver.Elastic(t))
	l := newLog(t, esaudit.Config{IndexPrefix: prefix})
	l.Append(ctx, dcsync.PackRecords([]dcsync.Record{rec("m1", "a", "a", dcsync.StageProcess, t0)}))
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
		"ids": `{"type":"keyword","doc_values":false}`, "dc": `{"type":"keyword"}`, "origin": `{"type":"keyword"}`,
		"stage": `{"type":"keyword"}`, "status": `{"type":"keyword"}`, "target": `{"type":"keyword"}`,
		"attempt": `{"type":"integer"}`, "written": `{"type":"date_nanos"}`, "time": `{"type":"date_nanos"}`,
		"x": `{"type":"object","enabled":false}`,
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
	if f := settings[index].Settings.Index.Sort.Field; len(f) != 1 || f[0] != "written" {
		t.Errorf("index sort = %v, want [written]", f)
	}
	if d := settings[index].Settings.Index.Translog.Durability; d != "request" {
		t.Errorf("translog durability = %q, want request", d)
	}
}

// get decodes the answer to a GET of path.
func get(t *testing.T, l *esaudit.Log, path string, v any) {
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
	l := newLog(t, esaudit.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	bad := rec("bad", "a", "a", dcsync.StageApply, t0)
	bad.Time = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	l.Append(ctx, entries(rec("ok1", "a", "a", dcsync.StageProcess, t0), bad,
		rec("ok2", "a", "a", dcsync.StageProcess, t0)))
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

// entries returns each record as an entry of its own: a document each.
func entries(recs ...dcsync.Record) []dcsync.Entry {
	out := make([]dcsync.Entry, len(recs))
	for i, r := range recs {
		out[i] = dcsync.PackRecords([]dcsync.Record{r})[0]
	}
	return out
}
