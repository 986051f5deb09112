package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
	dchttp "github.com/dcsync/dcsync/transport/http"
	memtransport "github.com/dcsync/dcsync/transport/memory"
	"github.com/dcsync/dcsync/transport/transporttest"
)

func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }

var quiet = slog.New(slog.DiscardHandler)

// env is an audit log in the test Elasticsearch under a prefix of the
// test's own.
type env struct {
	url, prefix string
	log         *esaudit.Log
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{url: testserver.Elastic(t)}
	e.prefix = testserver.IndexPrefix(t, e.url)
	var err error
	e.log, err = esaudit.New(context.Background(), esaudit.Config{URLs: []string{e.url},
		IndexPrefix: e.prefix, SpoolDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close() })
	return e
}

func (e *env) flush(t *testing.T) {
	t.Helper()
	if err := e.log.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// dcsync runs the command line with the env's audit flags and returns its
// exit status and output.
func (e *env) dcsync(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	args = append(args[:1:1], append([]string{"--elastic", e.url, "--index-prefix", e.prefix}, args[1:]...)...)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, func(k string) string { return vars[k] })
	return code, stdout.String(), stderr.String()
}

func TestTrace(t *testing.T) {
	e := newEnv(t)
	w := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return w.Add(time.Duration(ms) * time.Millisecond) }
	req := &dcsync.Request{ID: "req-1", Origin: "unicom", Key: "user:42", Op: "set", Payload: []byte("hello"), Version: 1}
	recs := []dcsync.Record{
		{ID: "req-1", DC: "telecom", Origin: "unicom", Stage: dcsync.StageApply, Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: at(60)},
		{ID: "req-1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: at(1), Request: req},
		{ID: "req-1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship, Status: dcsync.StatusFailed, Target: "telecom", Attempt: 1, Error: "connection refused", Written: w, Time: at(2)},
		{ID: "req-1", DC: "unicom", Origin: "unicom", Stage: dcsync.StageReship, Status: dcsync.StatusOK, Target: "telecom", Attempt: 2, Written: w, Time: at(50)},
		{ID: "req-1", DC: "telecom", Origin: "unicom", Stage: dcsync.StageCollect, Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: at(55)},
		{ID: "req-2", DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: at(3)},
	}
	if err := e.log.Append(context.Background(), dcsync.PackRecords(recs)); err != nil {
		t.Fatal(err)
	}
	e.flush(t)

	code, out, errOut := e.dcsync(t, nil, "trace", "req-1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `request req-1  origin unicom  written 2026-11-25T09:00:00.000000Z
key user:42  op set  payload 5 bytes
TIME                         DC       STAGE    STATUS  TARGET   ATTEMPT  ERROR
2026-11-25T09:00:00.001000Z  unicom   process  ok      -        1        
2026-11-25T09:00:00.002000Z  unicom   reship   failed  telecom  1        connection refused
2026-11-25T09:00:00.050000Z  unicom   reship   ok      telecom  2        
2026-11-25T09:00:00.055000Z  telecom  collect  ok      -        1        
2026-11-25T09:00:00.060000Z  telecom  apply    ok      -        1        
`
	if out != want {
		t.Fatalf("trace printed\n%s\nwant\n%s", out, want)
	}

	if code, _, errOut := e.dcsync(t, nil, "trace", "req-404"); code != exitError || !strings.Contains(errOut, "no audit records of request req-404") {
		t.Fatalf("unknown request: exit %d, %q", code, errOut)
	}
	if code, _, _ := e.dcsync(t, nil, "trace"); code != exitUsage {
		t.Fatalf("trace without an ID: exit %d, want %d", code, exitUsage)
	}
}

func TestReconcileOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	secret := "a secret unicom and telecom share"
	net := memtransport.NewNetwork(1)
	net.SetFaults("unicom", "telecom", memtransport.Faults{Fail: 1}) // nothing gets through
	newSyncer := func(dc, peer string, p dcsync.Processor) *dcsync.Syncer {
		s, err := dcsync.New(dcsync.Config{DC: dc, Processor: p, Audit: e.log, Logger: quiet,
			Peers:    map[string]dcsync.Sender{peer: net.Sender(dc, peer)},
			Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	unicom := newSyncer("unicom", "telecom", transporttest.NewStore())
	telecomState := transporttest.NewStore()
	telecom := newSyncer("telecom", "unicom", telecomState)
	net.Attach("telecom", telecom.Collector())
	for i := range 10 {
		if err := unicom.Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i), Op: "set"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := unicom.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	if telecomState.Applied() != 0 {
		t.Fatal("writes reached telecom: nothing to repair")
	}
	vars := map[string]string{"DCSYNC_SECRET": secret}

	// telecom is down: the pass fails to deliver, and says so.
	dead := httptest.NewServer(nil)
	dead.Close()
	code, out, errOut := e.dcsync(t, vars, "reconcile", "--once", "--dc", "unicom", "--peer", "telecom="+dead.URL,
		"--grace", "0", "--checkpoint=false")
	if code != exitFailing || !strings.Contains(out, "scanned 10  complete 0  repaired 0  failing 10") {
		t.Fatalf("peer down: exit %d\n%s%s", code, out, errOut)
	}

	// telecom is up behind the HTTP transport.
	srv := httptest.NewServer(dchttp.NewHandler(telecom.Collector(),
		dchttp.HandlerConfig{Secrets: map[string][]byte{"unicom": []byte(secret)}}))
	defer srv.Close()
	args := []string{"reconcile", "--once", "--dc", "unicom", "--peer", "telecom=" + srv.URL, "--grace", "0"}
	code, out, errOut = e.dcsync(t, vars, args...)
	if code != exitOK || !strings.Contains(out, "scanned 10  complete 0  repaired 10  failing 0") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := telecomState.Applied(); n != 10 {
		t.Fatalf("telecom applied %d writes, want 10", n)
	}

	// A second run resumes from the checkpoint and finds everything applied.
	if err := telecom.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	code, out, errOut = e.dcsync(t, vars, args...)
	if code != exitOK || !strings.Contains(out, "scanned 10  complete 10  repaired 0  failing 0") {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errOut)
	}

	if code, _, _ := e.dcsync(t, nil, args...); code != exitUsage {
		t.Fatalf("no secret: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := e.dcsync(t, vars, "reconcile", "--once", "--dc", "unicom"); code != exitUsage {
		t.Fatalf("no peer: exit %d, want %d", code, exitUsage)
	}
}
