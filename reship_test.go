package dcsync_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/transport/memory"
)

func TestReshipRetriesOnlyFailedRequests(t *testing.T) {
	var calls atomic.Int32
	peer := &recordingSender{}
	peer.send = func(reqs []*dcsync.Request) error {
		if calls.Add(1) > 1 {
			return nil
		}
		errs := make([]error, len(reqs))
		errs[0] = errors.New("busy")            // retried
		errs[len(reqs)-1] = dcsync.ErrInvalidID // permanent: not retried
		return &dcsync.BatchError{Errs: errs}
	}
	log := auditmem.New(0)
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1), Audit: log,
		Peers: map[string]dcsync.Sender{"telecom": peer},
		Delivery: dcsync.Delivery{BatchSize: 3, Linger: 50 * time.Millisecond,
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Attempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		req := &dcsync.Request{Key: "k"}
		if err := s.Write(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, req.ID)
	}
	s.Close()
	if len(peer.got) != 2 || len(peer.got[0]) != 3 || len(peer.got[1]) != 1 || peer.got[1][0] != ids[0] {
		t.Fatalf("batches sent: %v", peer.got)
	}
	if r := log.Records(ids[0]); len(r) != 3 || r[1].Status != dcsync.StatusFailed || r[2].Attempt != 2 || r[2].Status != dcsync.StatusOK {
		t.Fatalf("trail of the retried write: %+v", r)
	}
	if st := s.Stats(); st.Shipped != 2 || st.ShipFailed != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestReshipBackpressure(t *testing.T) {
	release := make(chan struct{})
	peer := &recordingSender{send: func([]*dcsync.Request) error { <-release; return nil }}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1),
		Peers:    map[string]dcsync.Sender{"telecom": peer},
		Delivery: dcsync.Delivery{QueueSize: 3, BatchSize: 1, Linger: -1, Workers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 0; i < 10 && full == nil; i++ { // one in flight, two waiting, then full
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		full = s.Write(ctx, &dcsync.Request{Key: "k"})
		cancel()
	}
	if !errors.Is(full, dcsync.ErrQueueFull) || !errors.Is(full, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrQueueFull", full)
	}
	close(release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(peer.delivered()); n != 3 {
		t.Fatalf("peer got %d, want the 3 writes that were queued", n)
	}
}

func TestCloseReleasesBlockedWriters(t *testing.T) {
	release := make(chan struct{})
	peer := &recordingSender{send: func([]*dcsync.Request) error { <-release; return nil }}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1),
		Peers:    map[string]dcsync.Sender{"telecom": peer},
		Delivery: dcsync.Delivery{QueueSize: 1, BatchSize: 1, Linger: -1, Workers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 3)
	for range 3 {
		go func() { errc <- s.Write(context.Background(), &dcsync.Request{Key: "k"}) }()
	}
	time.Sleep(20 * time.Millisecond) // let the writers block
	go func() { time.Sleep(20 * time.Millisecond); close(release) }()
	s.Close()
	closed := 0
	for range 3 {
		if err := <-errc; errors.Is(err, dcsync.ErrClosed) {
			closed++
		}
	}
	if closed == 0 {
		t.Fatal("no blocked writer was released with ErrClosed")
	}
}

func TestDeadPeerDoesNotHoldUpWriters(t *testing.T) {
	var calls atomic.Int32
	peer := &recordingSender{send: func([]*dcsync.Request) error { calls.Add(1); return errors.New("down") }}
	log := auditmem.New(0)
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1), Audit: log,
		Peers: map[string]dcsync.Sender{"telecom": peer},
		Delivery: dcsync.Delivery{QueueSize: 8, BatchSize: 4, Linger: -1,
			// Marked down for 50ms to 100ms after its first failed batch:
			// longer than the writes below take.
			Backoff: dcsync.Backoff{Initial: 100 * time.Millisecond, Max: time.Hour, Attempts: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 200 { // far more than the queue holds
		if err := s.Write(ctx, &dcsync.Request{Key: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if n := calls.Load(); n > 4 {
		t.Fatalf("%d sends to a peer marked down", n)
	}
	c := log.Counts()[auditmem.Tally{DC: "unicom", Stage: dcsync.StageReship, Status: dcsync.StatusFailed}]
	if c < 200 {
		t.Fatalf("%d failed reship records, want one per write at least", c)
	}
	if st := s.Stats(); st.ShipFailed != 200 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := dcsync.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	for attempt, max := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 50, 40: 50} {
		max *= time.Millisecond
		for range 50 {
			if d := b.Delay(attempt); d < max/2 || d > max {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", attempt, d, max/2, max)
			}
		}
	}
}

func TestLanesKeepEachKeysOrder(t *testing.T) {
	var mu sync.Mutex
	last := map[string]int{}
	var disorder atomic.Int32
	peer := &recordingSender{send: func(reqs []*dcsync.Request) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reqs {
			n, _ := strconv.Atoi(string(r.Payload))
			if n < last[r.Key] {
				disorder.Add(1)
			}
			last[r.Key] = n
		}
		return nil
	}}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1),
		Peers:    map[string]dcsync.Sender{"telecom": peer},
		Delivery: dcsync.Delivery{BatchSize: 7, Workers: 4}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		req := &dcsync.Request{Key: fmt.Sprint("k", i%13), Payload: []byte(strconv.Itoa(i))}
		if err := s.Write(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(peer.delivered()); n != 2000 || disorder.Load() != 0 {
		t.Fatalf("peer got %d writes, %d of them after a later write to their key", n, disorder.Load())
	}
}

// blipPeer returns a peer that fails its first batch whole.
func blipPeer() *recordingSender {
	var calls atomic.Int32
	return &recordingSender{send: func([]*dcsync.Request) error {
		if calls.Add(1) == 1 {
			return errors.New("blip")
		}
		return nil
	}}
}

func TestPeerBackFromABlipIsSentToAgain(t *testing.T) {
	peer := blipPeer()
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1),
		Peers: map[string]dcsync.Sender{"telecom": peer},
		// One try a batch: the first batch fails whole and marks the peer
		// down for at most Initial, not for Max.
		Delivery: dcsync.Delivery{Linger: -1, Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: time.Hour, Attempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for range 2 {
		if err := s.Write(ctx, &dcsync.Request{Key: "k"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // 20 times the longest the peer stays marked down
	}
	// The first write failed whole, waited in the queue and went again
	// once the peer answered.
	if st := s.Stats(); st.ShipFailed != 0 || st.Shipped != 2 {
		t.Fatalf("stats %+v: want both writes shipped", st)
	}
	if got := peer.delivered(); len(got) != 2 {
		t.Fatalf("peer got %v", got)
	}
}

// missing counts the ids s has not applied.
func (s *store) missing(ids []string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if s.applies[id] == 0 {
			n++
		}
	}
	return n
}

// TestReturningPeerCatchesUp takes one of two peers down for 10 seconds
// under a steady write load, with default Delivery settings and no
// reconciler: the other peer gets every write meanwhile, and the one that
// returns gets every write of the outage within 5 seconds of its return,
// each key's writes in order.
func TestReturningPeerCatchesUp(t *testing.T) {
	const outage = 10 * time.Second
	nw := memory.NewNetwork(1)
	names := []string{"unicom", "telecom", "mobile"}
	stores := map[string]*store{}
	var origin *dcsync.Syncer
	for _, dc := range names {
		stores[dc] = newStore(0, 1)
		s, err := dcsync.New(dcsync.Config{DC: dc, Peers: nw.Peers(dc, names...), Processor: stores[dc]})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nw.Attach(dc, s.Collector())
		if dc == "unicom" {
			origin = s
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var during []string
	write := func(i int) string {
		req := &dcsync.Request{Key: fmt.Sprint("k", i%50), Payload: []byte(strconv.Itoa(i))}
		if err := origin.Write(ctx, req); err != nil {
			t.Fatal(err)
		}
		return req.ID
	}
	i := 0
	for range 50 { // before: connections up, the queue running
		write(i)
		i++
	}
	nw.SetFaults("unicom", "telecom", memory.Faults{Fail: 1})
	tick := time.NewTicker(10 * time.Millisecond) // about 100 writes/s
	for end := time.Now().Add(outage); time.Now().Before(end); i++ {
		<-tick.C
		during = append(during, write(i))
	}
	tick.Stop()
	st := dcsync.PeerStates(origin)
	if down := st["telecom"]; down.DownSince.IsZero() || down.Backlog == 0 || down.Oldest.IsZero() {
		t.Fatalf("telecom at the end of its outage: %+v", down)
	}
	if up := st["mobile"]; !up.DownSince.IsZero() {
		t.Fatalf("mobile: %+v", up)
	}
	nw.SetFaults("unicom", "telecom", memory.Faults{})
	back := time.Now()
	for stores["telecom"].missing(during) > 0 {
		if time.Since(back) > 5*time.Second {
			t.Fatalf("%d of the %d writes of the outage not applied 5s after the peer's return",
				stores["telecom"].missing(during), len(during))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d writes of a %v outage applied %v after the return", len(during), outage, time.Since(back))
	for stores["mobile"].missing(during) > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := stores["mobile"].missing(during); n > 0 {
		t.Fatalf("the healthy peer misses %d writes", n)
	}
	if err := origin.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if back := dcsync.PeerStates(origin)["telecom"]; back.Backlog != 0 || !back.DownSince.IsZero() {
		t.Fatalf("telecom once back: %+v", back)
	}
	if st := origin.Stats(); st.ShipFailed != 0 {
		t.Fatalf("writes given up: %+v", st)
	}
	// Each key's last write wins everywhere: the re-sent writes came in
	// order, and after the older ones.
	for k, w := range stores["unicom"].values {
		if got := stores["telecom"].values[k]; got == nil || got.ID != w.ID {
			t.Fatalf("key %s: telecom holds %v, unicom %s", k, got, w.ID)
		}
	}
}

// TestSlowPeerDoesNotStarveTheOthers fills a hanging peer's queue: the
// writes still reach the other peer, whichever order the peers are in.
func TestSlowPeerDoesNotStarveTheOthers(t *testing.T) {
	release := make(chan struct{})
	slow := &recordingSender{send: func([]*dcsync.Request) error { <-release; return nil }}
	fast := &recordingSender{}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1),
		Peers:    map[string]dcsync.Sender{"slow": slow, "fast": fast},
		Delivery: dcsync.Delivery{QueueSize: 4, BatchSize: 1, Linger: -1, Workers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	full := 0
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if err := s.Write(ctx, &dcsync.Request{Key: "k"}); errors.Is(err, dcsync.ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	if full == 0 {
		t.Fatal("the slow peer's queue never filled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(fast.delivered()) < 20 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if n := len(fast.delivered()); n != 20 {
		t.Fatalf("the fast peer got %d of 20 writes", n)
	}
	close(release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNegativeProbeKeepsNoRetryQueue: with Delivery.Probe negative, a
// batch that fails whole is left to the reconciler at once.
func TestNegativeProbeKeepsNoRetryQueue(t *testing.T) {
	peer := blipPeer()
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: newStore(0, 1),
		Peers: map[string]dcsync.Sender{"telecom": peer},
		Delivery: dcsync.Delivery{Linger: -1, Probe: -1,
			Backoff: dcsync.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Write(ctx, &dcsync.Request{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	for s.Stats().ShipFailed == 0 { // the peer is marked down: Flush would not wait
		time.Sleep(time.Millisecond)
	}
	if err := s.Write(ctx, &dcsync.Request{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	for s.Stats().Shipped == 0 { // sent once the peer may be tried again
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ShipFailed != 1 || st.Shipped != 1 {
		t.Fatalf("stats %+v: want the first write failed, the second shipped", st)
	}
}
