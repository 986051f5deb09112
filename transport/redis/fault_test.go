package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// deadLetters waits until d has want dead letters and returns them.
func deadLetters(t *testing.T, d *dc, want int) []DeadLetter {
	t.Helper()
	var got []DeadLetter
	eventually(t, 30*time.Second, func() bool {
		var err error
		got, err = d.node.DeadLetters(context.Background(), "", 100)
		return err == nil && len(got) >= want
	}, func() string { return fmt.Sprintf("%s has %d dead letters, want %d: %+v", d.name, len(got), want, got) })
	if len(got) != want {
		t.Fatalf("%s has %d dead letters, want %d: %+v", d.name, len(got), want, got)
	}
	return got
}

// drained waits until every group on the streams of d has read every entry
// and has nothing pending.
func drained(t *testing.T, d *dc) {
	t.Helper()
	ctx := context.Background()
	streams := []string{d.node.apply}
	for peer := range d.node.cfg.Peers {
		streams = append(streams, d.node.outbound, d.node.inbound(d.name, peer))
	}
	eventually(t, 30*time.Second, func() bool {
		for _, s := range streams {
			info, err := d.client.XInfoStream(ctx, s).Result()
			if err != nil {
				return false
			}
			groups, err := d.client.XInfoGroups(ctx, s).Result()
			if err != nil || len(groups) == 0 {
				return false
			}
			for _, g := range groups {
				if g.Pending > 0 || g.LastDeliveredID != info.LastGeneratedID {
					return false
				}
			}
		}
		return true
	}, func() string { return d.name + " still has entries to handle" })
}

func TestPoisonEntryIsDeadLetteredWhileTheRestFlow(t *testing.T) {
	u, tc := pair(t, nil)
	tc.store.failKey("poison", errors.New("poison pill"))
	ids := write(t, u, "ok", 100)
	poison := &dcsync.Request{Key: "poison", Op: "set"}
	if err := u.sync.Write(context.Background(), poison); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, write(t, u, "more", 100)...)
	converge(t, tc, ids)

	dl := deadLetters(t, tc, 1)[0]
	if dl.Hop != "apply" || dl.RequestID != poison.ID || dl.Request == nil || dl.Request.Key != "poison" ||
		dl.Deliveries != 4 || !strings.Contains(dl.Reason, "poison pill") ||
		!strings.Contains(dl.Reason, "gave up after 3 deliveries") {
		t.Errorf("dead letter %+v", dl)
	}
	drained(t, tc)
	// The dedupe store forgot it, so the reconciler's re-send is applied.
	if c, err := tc.node.Dedupe().Claim(context.Background(), poison.ID); err != nil || c != dcsync.Claimed {
		t.Errorf("dead-lettered write claims %v, %v; want Claimed", c, err)
	}
}

func TestMalformedEntriesAreDeadLettered(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	add := func(c goredis.UniversalClient, stream string, values ...any) {
		t.Helper()
		if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	inbound := tc.node.inbound("telecom", "unicom")
	add(tc.client, inbound, "id", "x", "r", "garbage")
	add(tc.client, inbound, "hello", "redis-cli")
	add(tc.client, tc.node.apply, "id", "y", "r", "\x01\x05short")
	add(u.client, u.node.outbound, "r", "\x07")
	// Well formed, but rejected for good by the collector: it claims an
	// origin other than the stream it came in, or lacks a version.
	forged := &dcsync.Request{ID: "forged-1", Origin: "telecom", Key: "k", Version: 1}
	add(tc.client, inbound, entryValues(nil, forged)...)
	unversioned := &dcsync.Request{ID: "unversioned-1", Origin: "unicom", Key: "k"}
	add(tc.client, inbound, entryValues(nil, unversioned)...)

	ids := write(t, u, "ok", 100)
	converge(t, tc, ids)

	byEntry := map[string]DeadLetter{}
	// The origin's bad entry is dead-lettered by both groups reading it:
	// the local one, which applies, and the peer's, which ships.
	for _, d := range append(deadLetters(t, tc, 5), deadLetters(t, u, 2)...) {
		byEntry[d.Hop+" "+d.RequestID] = d
		if d.Deliveries != 1 {
			t.Errorf("dead letter %+v after %d deliveries, want 1: permanent errors are not retried", d, d.Deliveries)
		}
	}
	for key, reason := range map[string]string{
		"collect:unicom x":             "malformed stream entry",
		"collect:unicom ":              "malformed stream entry: no \"r\" field",
		"apply y":                      "malformed stream entry: truncated",
		"reship:telecom ":              "malformed stream entry: unknown encoding version 7",
		"local ":                       "malformed stream entry: unknown encoding version 7",
		"collect:unicom forged-1":      "request origin differs from sending datacenter",
		"collect:unicom unversioned-1": "missing version",
	} {
		if d, ok := byEntry[key]; !ok || !strings.Contains(d.Reason, reason) {
			t.Errorf("dead letter of %q: %+v, want reason with %q", key, d, reason)
		}
	}
	drained(t, tc)
	drained(t, u)
}

func TestBatchEntryDeadLettersOnlyItsBadRequests(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	good1 := &dcsync.Request{ID: "good-1", Origin: "unicom", Key: "g1", Op: "set", Version: 1}
	good2 := &dcsync.Request{ID: "good-2", Origin: "unicom", Key: "g2", Op: "set", Version: 2}
	unversioned := &dcsync.Request{ID: "unversioned-2", Origin: "unicom", Key: "k"}
	frames := appendFrame(nil, string(encode(good1)))
	frames = appendFrame(frames, "\x01\x05short")
	frames = appendFrame(frames, string(encode(unversioned)))
	frames = appendFrame(frames, string(encode(good2)))
	inbound := tc.node.inbound("telecom", "unicom")
	if err := tc.client.XAdd(ctx, &goredis.XAddArgs{Stream: inbound, Values: batchValues(4, frames)}).Err(); err != nil {
		t.Fatal(err)
	}
	// An entry whose framing is broken is dead-lettered whole.
	if err := tc.client.XAdd(ctx, &goredis.XAddArgs{Stream: inbound,
		Values: batchValues(3, appendFrame(nil, string(encode(good1))))}).Err(); err != nil {
		t.Fatal(err)
	}
	ids := append(write(t, u, "ok", 50), good1.ID, good2.ID)
	converge(t, tc, ids)

	dead := deadLetters(t, tc, 3)
	byIndex := map[int]DeadLetter{}
	for _, d := range dead {
		if d.Hop != "collect:unicom" || d.Deliveries != 1 {
			t.Errorf("dead letter %+v, want one delivery at collect:unicom", d)
		}
		byIndex[d.Index] = d
	}
	if d := byIndex[1]; !strings.Contains(d.Reason, "request 1 of the entry: redis: malformed stream entry") || d.Request != nil {
		t.Errorf("dead letter of the malformed request: %+v", d)
	}
	if d := byIndex[2]; d.RequestID != unversioned.ID || d.Request == nil || !strings.Contains(d.Reason, "missing version") {
		t.Errorf("dead letter of the unversioned request: %+v", d)
	}
	if d := byIndex[0]; !strings.Contains(d.Reason, "malformed stream entry: truncated") || d.Request != nil {
		t.Errorf("dead letter of the broken entry: %+v", d)
	}
	drained(t, tc)
}

func TestFailedHandoffAcknowledgesNothing(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	// The apply stream's key holds a string: the handoff script's XADD fails.
	if err := tc.client.Set(ctx, tc.node.apply, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ids := write(t, u, "k", 50)
	inbound := tc.node.inbound("telecom", "unicom")
	eventually(t, 30*time.Second, func() bool {
		p, err := tc.client.XPending(ctx, inbound, "collect").Result()
		return err == nil && p.Count > 0
	}, func() string { return "telecom's collect hop never held an entry" })
	if n := tc.store.has(ids); n != 0 {
		t.Fatalf("%d writes applied through a broken apply stream", n)
	}
	if err := tc.client.Del(ctx, tc.node.apply).Err(); err != nil {
		t.Fatal(err)
	}
	converge(t, tc, ids) // the pending entries are claimed and handed off
	drained(t, tc)
	if dl, _ := tc.node.DeadLetters(ctx, "", 10); len(dl) > 0 {
		t.Errorf("dead-lettered %+v", dl)
	}
}

func TestDuplicateDeliveriesAreAppliedOnce(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	ids := write(t, u, "k", 20)
	converge(t, tc, ids)
	// The origin sends the same writes again, twice in one batch: as a
	// retry after a lost acknowledgement, or the reconciler, would.
	var again []*dcsync.Request
	for i, id := range ids[:5] {
		req := &dcsync.Request{ID: id, Origin: "unicom", Key: fmt.Sprintf("k-%d", i), Op: "set",
			Payload: []byte("v"), Version: 1}
		again = append(again, req, req)
	}
	if err := u.node.Senders()["telecom"].Send(ctx, again); err != nil {
		t.Fatal(err)
	}
	drained(t, tc)
	tc.store.mu.Lock()
	defer tc.store.mu.Unlock()
	for _, id := range ids {
		if n := tc.store.applies[id]; n != 1 {
			t.Errorf("write %s applied %d times, want 1", id, n)
		}
	}
	if st := tc.sync.Stats(); st.Duplicates != 10 {
		t.Errorf("%d duplicates dropped, want 10", st.Duplicates)
	}
}

func TestPeerRedisRestartMidStream(t *testing.T) {
	u, tc := pair(t, nil)
	ids := write(t, u, "before", 300)
	tc.redis.Stop()
	ids = append(ids, write(t, u, "during", 300)...)
	eventually(t, 30*time.Second, func() bool { return u.node.Stats().Stalled > 0 },
		func() string { return "unicom's reship hop never noticed telecom down" })
	tc.redis.Start()
	ids = append(ids, write(t, u, "after", 300)...)
	converge(t, tc, ids)
	back := write(t, tc, "back", 100)
	converge(t, u, back)
	drained(t, u)
	drained(t, tc)
	for _, d := range []*dc{u, tc} {
		if dl, _ := d.node.DeadLetters(context.Background(), "", 10); len(dl) > 0 {
			t.Errorf("%s dead-lettered %+v", d.name, dl)
		}
	}
}

// stuckWorkerEnv, when set to a Redis address, makes the test binary a
// process of telecom whose Processor never returns, standing for a worker
// that dies mid-batch (see TestMain).
const stuckWorkerEnv = "DCSYNC_TEST_STUCK_WORKER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(stuckWorkerEnv); addr != "" {
		runStuckWorker(addr)
		return
	}
	// The examples find their datacenters' Redis servers here.
	os.Exit(testserver.RedisMain(m, "UNICOM_REDIS", "TELECOM_REDIS"))
}

// runStuckWorker runs telecom's apply hop on addr with a Processor that
// announces its first batch on stdout and never returns; the test kills it.
func runStuckWorker(addr string) {
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	cfg := testConfig("telecom", client, nil)
	cfg.Workers, cfg.Concurrency, cfg.BatchSize, cfg.Consumer = 1, 1, 50, "stuck"
	node, err := NewNode(cfg)
	if err != nil {
		panic(err)
	}
	started := make(chan struct{})
	s, err := dcsync.New(node.Wire(dcsync.Config{Processor: dcsync.ProcessorFunc(
		func(context.Context, *dcsync.Request) error {
			close(started)
			select {} // stuck until killed
		})}))
	if err != nil {
		panic(err)
	}
	go func() {
		<-started
		fmt.Println("applying")
	}()
	_ = node.Run(context.Background(), s)
}

func TestWorkerKilledMidBatch(t *testing.T) {
	ctx := context.Background()
	srv := testserver.StartRedis(t)
	client := newClient(t, srv.Addr())
	cfg := testConfig("telecom", client, nil)
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []*dcsync.Request
	var ids []string
	for i := range 200 {
		id := fmt.Sprintf("w-%d", i)
		reqs = append(reqs, &dcsync.Request{ID: id, Origin: "unicom", Key: id, Op: "set", Version: uint64(i + 1)})
		ids = append(ids, id)
	}
	for i := 0; i < len(reqs); i += 10 { // 20 entries of 10 requests
		if err := node.Handoff().ProcessBatch(ctx, reqs[i:i+10]); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), stuckWorkerEnv+"="+srv.Addr())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "applying\n" {
		t.Fatalf("worker process said %q, %v", line, err)
	}
	_ = cmd.Process.Kill() // mid-batch: it holds 6 entries (BatchSize/8), none acknowledged
	_ = cmd.Wait()
	pending, err := client.XPending(ctx, node.apply, "apply").Result()
	if err != nil || pending.Consumers["stuck:apply:0"] != 6 {
		t.Fatalf("killed worker holds %+v, %v; want 6 entries", pending, err)
	}

	d := start(t, "telecom", srv, cfg, newStore())
	converge(t, d, ids)
	drained(t, d)
	if st := d.node.Stats(); st.Claimed < 6 || st.DeadLettered != 0 {
		t.Errorf("stats %+v, want at least 6 claimed and nothing dead-lettered", st)
	}
}

func TestRestartWhilePeerDownLosesNothing(t *testing.T) {
	u, tc := pair(t, nil)
	tc.redis.Stop()
	ids := write(t, u, "k", 200)
	eventually(t, 30*time.Second, func() bool { return u.node.Stats().Stalled > 0 },
		func() string { return "unicom's reship hop never noticed telecom down" })

	// unicom's process stops while holding a stalled batch, and another
	// takes its place: it claims what the first left pending.
	stopped := make(chan struct{})
	go func() { u.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return while the peer was down")
	}
	cfg := testConfig("unicom", u.client, map[string]goredis.UniversalClient{"telecom": tc.client})
	u2 := start(t, "unicom", u.redis, cfg, newStore())
	tc.redis.Start()
	converge(t, tc, ids)
	drained(t, u2)
	if st := u2.node.Stats(); st.Claimed == 0 {
		t.Errorf("the new process claimed nothing: %+v", st)
	}
}

func TestWriteFailsWhileOwnRedisIsDown(t *testing.T) {
	u, tc := pair(t, nil)
	u.redis.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := u.sync.Write(ctx, &dcsync.Request{Key: "k", Op: "set"})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write with the outbox down: %v, want a connection error", err)
	}
	u.redis.Start()
	var ids []string
	eventually(t, 30*time.Second, func() bool {
		req := &dcsync.Request{Key: "k", Op: "set"}
		if u.sync.Write(ctx, req) != nil {
			return false
		}
		ids = append(ids, req.ID)
		return true
	}, func() string { return "writes still fail after unicom's Redis is back" })
	converge(t, tc, ids)
}
