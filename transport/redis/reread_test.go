package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// noClaims makes a claim by another worker (after ClaimIdle) far later
// than any bound of these tests: what they see handled was reread.
func noClaims(c *NodeConfig) {
	c.ClaimIdle = 10 * time.Minute
	c.MaxAttempts = 1 << 20
}

// signal is a slog.Handler that closes a channel on the first record whose
// message contains a string.
type signal struct {
	slog.Handler
	want string
	once sync.Once
	c    chan struct{}
}

func (s *signal) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, s.want) {
		s.once.Do(func() { close(s.c) })
	}
	return nil
}

// A worker whose acknowledgement was lost with its connection rereads the
// entry as soon as Redis is back, rather than after ClaimIdle.
func TestWorkerRereadsItsEntriesWhenRedisIsBack(t *testing.T) {
	srv := testserver.StartRedis(t)
	cfg := testConfig("unicom", newClient(t, srv.Addr()), nil)
	noClaims(&cfg)
	failed := &signal{Handler: cfg.Logger.Handler(), want: "acknowledging entries failed", c: make(chan struct{})}
	cfg.Logger = slog.New(failed)
	holding, release := make(chan struct{}), make(chan struct{})
	var calls sync.Map
	st := newStore()
	proc := dcsync.ProcessorFunc(func(ctx context.Context, r *dcsync.Request) error {
		if _, again := calls.LoadOrStore(r.ID, true); !again {
			close(holding)
			<-release
			return errors.New("try again") // its record of failures cannot be written
		}
		return st.Process(ctx, r)
	})
	cfg.Workers = 1
	d := start(t, "unicom", srv, cfg, proc)
	req := &dcsync.Request{Key: "k", Op: "set"}
	if err := d.sync.Write(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	<-holding
	srv.Stop()
	close(release)
	select {
	case <-failed.c:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker never failed to settle its entry")
	}
	srv.Start() // the entry is pending to the worker, its failure unrecorded
	eventually(t, 60*time.Second, func() bool { return st.has([]string{req.ID}) == 1 },
		func() string { return fmt.Sprintf("not applied; stats %+v", d.node.Stats()) })
	if s := d.node.Stats(); s.Reread == 0 || s.Claimed != 0 {
		t.Errorf("stats %+v: want the entry reread, not claimed", s)
	}
}

// Under a steady write load, a ~3s restart of each datacenter's Redis
// delays writes by about the outage, not by ClaimIdle: no entry waits
// for a claim.
func TestRedisRestartDelaysWritesByTheOutageOnly(t *testing.T) {
	u, tc := pair(t, noClaims)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	written := map[string]time.Time{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil && i < 20000; i++ {
			req := &dcsync.Request{Key: fmt.Sprintf("k-%d", i%100), Op: "set", Payload: []byte("v")}
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			err := u.sync.Write(wctx, req)
			wcancel()
			if err == nil {
				mu.Lock()
				written[req.ID] = time.Now()
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	outage := func(r *testserver.Redis) {
		time.Sleep(500 * time.Millisecond)
		r.Stop()
		time.Sleep(3 * time.Second)
		r.Start()
	}
	sofar := func() []string {
		mu.Lock()
		defer mu.Unlock()
		ids := make([]string, 0, len(written))
		for id := range written {
			ids = append(ids, id)
		}
		return ids
	}
	outage(tc.redis) // the collect and apply hops, and unicom's reship hop's peer
	converge(t, tc, sofar())
	outage(u.redis) // unicom's outbox, and its local and reship hops
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	ids := sofar()
	if len(ids) < 100 {
		t.Fatalf("only %d writes went through", len(ids))
	}
	// Well within ClaimIdle (10 minutes): nothing waited for a claim.
	converge(t, tc, ids)
	converge(t, u, ids)
	for _, d := range []*dc{u, tc} {
		delays := make([]time.Duration, 0, len(ids))
		d.store.mu.Lock()
		for _, id := range ids {
			delays = append(delays, d.store.first[id].Sub(written[id]))
		}
		d.store.mu.Unlock()
		slices.Sort(delays)
		t.Logf("%s: %d writes applied; delay after Write p50 %v, p99 %v, max %v; node stats %+v",
			d.name, len(ids), delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1], d.node.Stats())
	}
}
