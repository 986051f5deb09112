package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/admin"
	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/internal/obstest"
	"github.com/dcsync/dcsync/internal/testserver"
	memtransport "github.com/dcsync/dcsync/transport/memory"
	dcredis "github.com/dcsync/dcsync/transport/redis"
	"github.com/dcsync/dcsync/transport/transporttest"
)

// cli runs the command line without the audit flags.
func cli(vars map[string]string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, func(k string) string { return vars[k] })
	return code, stdout.String(), stderr.String()
}

func TestStatusCommand(t *testing.T) {
	mesh, mons := obstest.Monitored(t, "a", "b", "c")
	mon := mons["a"]
	mesh.Down("c")
	mesh.Write(t, "a", 5)
	checker, err := health.New(health.Config{Monitor: mon, PeerDownAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/status/", http.StripPrefix("/status", admin.Handler(admin.Config{Monitor: mon, Health: checker})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	code, out, errOut := cli(nil, "status", srv.URL+"/status/")
	if code != exitFailing || !strings.Contains(out, "NOT READY:\n  peer c down since") ||
		!strings.Contains(out, "failing writes: 5") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	var peerLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "c ") {
			peerLine = l
		}
	}
	if f := strings.Fields(peerLine); len(f) < 4 || f[1] != "down" {
		t.Errorf("peer c's line: %q", peerLine)
	}
	code, out, _ = cli(nil, "status", "-json", srv.URL+"/status")
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); code != exitFailing || err != nil || st.DC != "a" || !st.Peer("c").Down {
		t.Fatalf("status -json: exit %d, %v\n%s", code, err, out)
	}
	if code, _, _ := cli(nil, "status"); code != exitUsage {
		t.Errorf("status without a URL: exit %d", code)
	}
	gone := httptest.NewServer(nil)
	gone.Close()
	if code, _, _ := cli(nil, "status", gone.URL); code != exitError {
		t.Errorf("status of nothing: exit %d", code)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := cli(nil, "version")
	if code != exitOK || !strings.HasPrefix(out, "dcsync ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// Every command's help has an example and names each default once; a bad
// flag is reported once, with where to look.
func TestHelpAndFlagErrors(t *testing.T) {
	for _, cmd := range [][]string{{"trace"}, {"reconcile"}, {"status"}, {"deadletters"}, {"version"}} {
		code, out, errOut := cli(nil, append(cmd, "-h")...)
		if code != exitOK || out != "" || !strings.Contains(errOut, "\nexample:\n  dcsync ") &&
			!strings.Contains(errOut, "\nexample:\n  DCSYNC_") {
			t.Errorf("%s -h: exit %d\n%s", cmd[0], code, errOut)
		}
		for _, l := range strings.Split(errOut, "\n") {
			if strings.Count(l, "(default") > 1 {
				t.Errorf("%s -h: default twice: %q", cmd[0], l)
			}
		}
		code, out, errOut = cli(nil, append(cmd, "-bogus")...)
		if code != exitUsage || out != "" || strings.Count(errOut, "-bogus") != 1 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s -bogus: exit %d, stderr %q", cmd[0], code, errOut)
		}
	}
}

func TestDeadLetters(t *testing.T) {
	if code, _, _ := cli(nil, "deadletters"); code != exitUsage {
		t.Errorf("no subcommand: exit %d", code)
	}
	if code, _, _ := cli(nil, "deadletters", "list"); code != exitUsage {
		t.Errorf("no --redis: exit %d", code)
	}
	ctx := context.Background()
	r := testserver.StartRedis(t)
	client := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer client.Close()
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "eu", Client: client, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// Dead letters as transport/redis writes them: a write whose apply
	// fails every time ends there.
	var failing atomic.Bool
	failing.Store(true)
	s, err := dcsync.New(dcsync.Config{DC: "eu", Peers: map[string]dcsync.Sender{"us": memtransport.NewNetwork(1).Sender("eu", "us")},
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error {
			if failing.Load() {
				return fmt.Errorf("%w: refused by the test", dcsync.ErrInvalid)
			}
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- node.Run(runCtx, s) }()
	reqs := []*dcsync.Request{}
	for i := range 3 {
		reqs = append(reqs, &dcsync.Request{ID: fmt.Sprintf("req-%d", i), Origin: "us", Key: "k", Op: "set", Version: uint64(1 + i)})
	}
	// Collected from us: the collect hop hands them to the apply stream.
	if err := node.Handoff().ProcessBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		dls, err := node.DeadLetters(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 3", len(dls))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done

	url := "redis://" + r.Addr()
	code, out, errOut := cli(nil, "deadletters", "list", "--redis", url, "--dc", "eu")
	if code != exitOK || strings.Count(out, "\n") != 4 || !strings.Contains(out, "req-1") || !strings.Contains(out, "apply") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(nil, "deadletters", "list", "--redis", url, "--dc", "eu", "-json", "-n", "1")
	if code != exitOK || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"RequestID":"req-0"`) {
		t.Fatalf("list -json: exit %d\n%s", code, out)
	}

	// Redriven, they are applied once the processor accepts them.
	code, out, errOut = cli(nil, "deadletters", "redrive", "--redis", url, "--dc", "eu")
	if code != exitOK || out != "redriven 3, kept 0 without a request\n" || errOut != "" {
		t.Fatalf("redrive: exit %d\n%s%s", code, out, errOut)
	}
	if n, _ := node.DeadLetters(ctx, "", 10); len(n) != 0 {
		t.Fatalf("%d dead letters left", len(n))
	}
	failing.Store(false)
	runCtx, stop = context.WithCancel(ctx)
	go func() { done <- node.Run(runCtx, s) }()
	deadline = time.Now().Add(2 * time.Minute)
	for s.Stats().Applied < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d of the redriven writes", s.Stats().Applied)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
}

func TestReconcileDryRunAndLock(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	secret := "a secret unicom and telecom share"
	net := memtransport.NewNetwork(1)
	net.SetFaults("unicom", "telecom", memtransport.Faults{Fail: 1})
	unicom, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: transporttest.NewStore(), Audit: e.log, Logger: quiet,
		Peers:    map[string]dcsync.Sender{"telecom": net.Sender("unicom", "telecom")},
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Attempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 4 {
		req := &dcsync.Request{Key: fmt.Sprint("k", i), Op: "set"}
		if err := unicom.Write(ctx, req); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, req.ID)
	}
	// Closing gives up the writes waiting for telecom, which is down: no
	// probe of the Syncer's own adds records during the dry runs below.
	if err := unicom.Close(); err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	vars := map[string]string{"DCSYNC_SECRET": secret}
	args := []string{"reconcile", "--once", "--dc", "unicom", "--peer", "telecom=" + srv.URL, "--grace", "0"}
	recordsOf := func() int {
		recs, err := e.log.Records(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	before := recordsOf()

	// A dry run lists the writes it would re-send, twice: it saved no checkpoint.
	for range 2 {
		code, out, errOut := e.dcsync(t, vars, append(args, "--dry-run")...)
		if code != exitOK || !strings.Contains(out, "scanned 4  complete 0  repaired 4  failing 0") ||
			!strings.Contains(out, "dry run: nothing was sent") || !strings.Contains(out, "to telecom: 4 writes") {
			t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
		}
		for _, id := range ids {
			if !strings.Contains(out, "    "+id+"\n") {
				t.Errorf("dry run does not list %s", id)
			}
		}
	}
	e.flush(t)
	if received.Load() != 0 || recordsOf() != before {
		t.Fatalf("dry run sent %d batches, records %d -> %d", received.Load(), before, recordsOf())
	}

	// Another reconciler holds the lock: the pass does nothing.
	r := testserver.StartRedis(t)
	client := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer client.Close()
	lock := dcredis.NewLock(client, dcredis.Key("dcsync", "unicom", "leader"))
	if ok, err := lock.Acquire(ctx, "service-reconciler", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	locked := append(args, "--redis", "redis://"+r.Addr())
	code, out, errOut := e.dcsync(t, vars, locked...)
	if code != exitOK || !strings.Contains(out, "another reconciler holds the leader lock of unicom") || received.Load() != 0 {
		t.Fatalf("lock held: exit %d, %d batches\n%s%s", code, received.Load(), out, errOut)
	}
	// Free, the pass takes it, tries, and gives it back.
	if err := lock.Release(ctx, "service-reconciler"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = e.dcsync(t, vars, locked...)
	if code != exitFailing || received.Load() == 0 || !strings.Contains(out, "failing 4") {
		t.Fatalf("lock free: exit %d, %d batches\n%s%s", code, received.Load(), out, errOut)
	}
	if n, err := client.Exists(ctx, dcredis.Key("dcsync", "unicom", "leader")).Result(); err != nil || n != 0 {
		t.Fatalf("the lock is still held after the command: %d, %v", n, err)
	}
}

// Trace reads only: it leaves no index template behind.
func TestTraceReadOnly(t *testing.T) {
	url := testserver.Elastic(t)
	prefix := testserver.IndexPrefix(t, url)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"trace", "--elastic", url, "--index-prefix", prefix, "req-1"}, &stdout, &stderr,
		func(string) string { return "" })
	if code != exitError || !strings.Contains(stderr.String(), "no audit records of request req-1") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	res, err := http.Get(url + "/_index_template/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("index template %s: %s, want 404", prefix, res.Status)
	}
	// A secured cluster's credentials go with the requests.
	var auth string
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer es.Close()
	code = run(context.Background(), []string{"trace", "--elastic", es.URL, "req-1"}, &stdout, &stderr,
		func(k string) string { return map[string]string{"DCSYNC_ELASTIC_API_KEY": "a2V5"}[k] })
	if code != exitError || auth != "ApiKey a2V5" {
		t.Fatalf("api key: exit %d, Authorization %q", code, auth)
	}
	code = run(context.Background(), []string{"trace", "--elastic", es.URL, "--elastic-user", "ops", "req-1"}, &stdout, &stderr,
		func(k string) string { return map[string]string{"DCSYNC_ELASTIC_PASSWORD": "pw"}[k] })
	if code != exitError || auth != "Basic b3BzOnB3" {
		t.Fatalf("basic auth: exit %d, Authorization %q", code, auth)
	}
}
