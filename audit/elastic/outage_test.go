package elastic_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/monitor"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// outageConfig makes a Log notice an outage and its end quickly.
func outageConfig(url, spool string) esaudit.Config {
	return esaudit.Config{URLs: []string{url}, SpoolDir: spool, FlushInterval: 20 * time.Millisecond,
		Retries: 1, RetryWait: 10 * time.Millisecond, ReplayInterval: 20 * time.Millisecond,
		Timeout: 5 * time.Second}
}

// flushUntilBack flushes until the spool has been replayed: Flush fails with
// ErrUnavailable while Elasticsearch is not reachable yet.
func flushUntilBack(t testing.TB, l *esaudit.Log) {
	t.Helper()
	var err error
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = l.Flush(ctx)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, esaudit.ErrUnavailable) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("spool never replayed: %v", err)
}

// count returns how many documents under prefix match q.
func count(t testing.TB, url, prefix string, q olivere.Query) int64 {
	t.Helper()
	c, err := olivere.NewClient(olivere.SetURL(url), olivere.SetSniff(false), olivere.SetHealthcheck(false))
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Count(prefix + "-*").Query(q).Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func records(n int, id string, written time.Time) []dcsync.Record {
	recs := make([]dcsync.Record, n)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("%s-%d", id, i), "a", "a", dcsync.StageProcess, written)
	}
	return recs
}

func TestOutageSpoolsAndReplays(t *testing.T) {
	ctx := context.Background()
	es := testserver.Elastic(t)
	p := testserver.NewProxy(t, es)
	prefix := testserver.IndexPrefix(t, es)
	cfg := outageConfig(p.URL(), t.TempDir())
	cfg.IndexPrefix = prefix
	l := newLog(t, cfg)

	if err := l.Append(ctx, entries(records(1000, "before", t0)...)); err != nil {
		t.Fatal(err)
	}
	flush(t, l)
	p.Cut()
	for i := range 20 {
		if err := l.Append(ctx, entries(records(250, fmt.Sprint("during", i), t0)...)); err != nil {
			t.Fatalf("Append failed during the outage: %v", err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.Flush(fctx); !errors.Is(err, esaudit.ErrUnavailable) {
		t.Fatalf("Flush during the outage: %v, want ErrUnavailable", err)
	}
	if s := l.Stats(); s.Pending == 0 || s.PendingBytes == 0 || s.Spooled < 5000 {
		t.Fatalf("nothing spooled during the outage: %+v", s)
	}
	var snap monitor.Snapshot
	l.Source().Fill(ctx, &snap)
	if s := l.Stats(); snap.Audit == nil || snap.Audit.Pending != s.Pending || snap.Audit.SpoolBytes != s.PendingBytes {
		t.Fatalf("the monitor Source shows %+v, the Log %+v", snap.Audit, s)
	}
	p.Restore()
	flushUntilBack(t, l)
	if n := count(t, es, prefix, olivere.NewMatchAllQuery()); n != 6000 {
		t.Fatalf("%d records in Elasticsearch, want 6000", n)
	}
	if s := l.Stats(); s.Pending != 0 || s.PendingBytes != 0 || s.Replayed < 5000 || s.Rejected != 0 {
		t.Fatalf("after replay: %+v", s)
	}
}

func TestStartsWhileUnavailable(t *testing.T) {
	ctx := context.Background()
	es := testserver.Elastic(t)
	p := testserver.NewProxy(t, es)
	p.Cut()
	prefix := testserver.IndexPrefix(t, es)
	cfg := outageConfig(p.URL(), t.TempDir())
	cfg.IndexPrefix = prefix
	l := newLog(t, cfg)
	if err := l.Append(ctx, entries(records(100, "r", t0)...)); err != nil {
		t.Fatal(err)
	}
	p.Restore()
	flushUntilBack(t, l)
	if n := count(t, es, prefix, olivere.NewMatchAllQuery()); n != 100 {
		t.Fatalf("%d records in Elasticsearch, want 100", n)
	}
	var mapping map[string]struct{ Mappings struct{ Dynamic string } }
	get(t, l, "/"+prefix+"-2026.11.25/_mapping", &mapping)
	if mapping[prefix+"-2026.11.25"].Mappings.Dynamic != "strict" {
		t.Fatalf("index created without the template: %+v", mapping)
	}
}

func TestSpoolOutlivesTheLog(t *testing.T) {
	ctx := context.Background()
	es := testserver.Elastic(t)
	p := testserver.NewProxy(t, es)
	prefix := testserver.IndexPrefix(t, es)
	cfg := outageConfig(p.URL(), t.TempDir())
	cfg.IndexPrefix = prefix
	cfg.Logger = quiet
	l, err := esaudit.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := l.Append(ctx, entries(records(300, "r", t0)...)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, esaudit.ErrUnavailable) {
		t.Fatalf("Close with records in the spool: %v, want ErrUnavailable", err)
	}
	p.Restore()
	l2 := newLog(t, cfg) // a restarted process on the same spool
	flushUntilBack(t, l2)
	if n := count(t, es, prefix, olivere.NewMatchAllQuery()); n != 300 {
		t.Fatalf("%d records in Elasticsearch, want 300", n)
	}
}

// TestOutageDuringWrites cuts Elasticsearch off while two datacenters write
// and checks that every record of every stage reaches it in the end.
func TestOutageDuringWrites(t *testing.T) {
	ctx := context.Background()
	es := testserver.Elastic(t)
	p := testserver.NewProxy(t, es)
	prefix := testserver.IndexPrefix(t, es)
	cfg := outageConfig(p.URL(), t.TempDir())
	cfg.IndexPrefix = prefix
	l := newLog(t, cfg)
	net := memtransport.NewNetwork(1)
	dcs := []string{"unicom", "telecom"}
	syncers := map[string]*dcsync.Syncer{}
	for i, dc := range dcs {
		peer := dcs[1-i]
		s, err := dcsync.New(dcsync.Config{DC: dc, Peers: map[string]dcsync.Sender{peer: net.Sender(dc, peer)},
			Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil }),
			Audit:     l, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		net.Attach(dc, s.Collector())
		syncers[dc] = s
	}
	// Both datacenters write through three phases: Elasticsearch up, cut
	// off until the Log has spooled, and back.
	write := func(n int) {
		var wg sync.WaitGroup
		for _, dc := range dcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					if err := syncers[dc].Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i), Op: "set"}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	write(1000)
	p.Cut()
	for i := 0; l.Stats().Spooled == 0; i++ {
		if i == 1000 {
			t.Fatal("nothing spooled while Elasticsearch was cut off")
		}
		write(20)
	}
	p.Restore()
	write(1000)
	for _, s := range syncers {
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	flushUntilBack(t, l)
	for i, dc := range dcs {
		st := syncers[dc].Stats()
		for stage, want := range map[dcsync.Stage]uint64{dcsync.StageProcess: st.Written, dcsync.StageApply: st.Applied} {
			origin := dc
			if stage == dcsync.StageApply {
				origin = dcs[1-i]
			}
			ids, err := l.IDs(ctx, dcsync.SetQuery{DC: dc, Origin: origin, Stage: stage,
				From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(ids)) != want {
				t.Errorf("%s: %d %s records in Elasticsearch, want %d", dc, len(ids), stage, want)
			}
		}
	}
}

// With no SpoolDir, a Log spools under DefaultSpoolDir, in a slot no other
// open Log holds, and a Log opened after it closed (a restarted process)
// takes that slot and replays it.
func TestDefaultSpoolOutlivesTheLog(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // os.UserCacheDir's on Linux
	ctx := context.Background()
	es := testserver.Elastic(t)
	p := testserver.NewProxy(t, es)
	prefix := testserver.IndexPrefix(t, es)
	cfg := outageConfig(p.URL(), "")
	cfg.IndexPrefix, cfg.Logger = prefix, quiet
	l, err := esaudit.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	other, err := esaudit.New(ctx, cfg) // another process of the machine
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	p.Cut()
	if err := l.Append(ctx, entries(records(300, "r", t0)...)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, esaudit.ErrUnavailable) {
		t.Fatalf("Close with records in the spool: %v, want ErrUnavailable", err)
	}
	base, err := esaudit.DefaultSpoolDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(base, "0", "spool-*.ndjson")); len(segs) == 0 {
		t.Fatalf("nothing spooled in the first slot of %s", base)
	}
	p.Restore()
	l2, err := esaudit.New(ctx, cfg) // the restarted process: the slot left free
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	flushUntilBack(t, l2)
	if n := count(t, es, prefix, olivere.NewMatchAllQuery()); n != 300 {
		t.Fatalf("%d records in Elasticsearch, want 300", n)
	}
	if s := l2.Stats(); s.Replayed < 300 {
		t.Errorf("the restarted Log replayed %d records, want 300 or more", s.Replayed)
	}
}
