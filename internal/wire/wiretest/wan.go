package wiretest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/netdelay"
)

// orderStore is a processor that records, per key, the payloads applied,
// in the order applied.
type orderStore struct {
	mu   sync.Mutex
	seen map[string][]int
	n    atomic.Int64
}

func (s *orderStore) Process(_ context.Context, r *dcsync.Request) error {
	v, err := strconv.Atoi(string(r.Payload))
	if err != nil {
		return fmt.Errorf("%w: payload %q", dcsync.ErrInvalid, r.Payload)
	}
	s.mu.Lock()
	s.seen[r.Key] = append(s.seen[r.Key], v)
	s.mu.Unlock()
	s.n.Add(1)
	return nil
}

// disorder counts the applies that came after a later write to their key.
func (s *orderStore) disorder() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, vs := range s.seen {
		for i := 1; i < len(vs); i++ {
			if vs[i] < vs[i-1] {
				n++
			}
		}
	}
	return n
}

// serveDelayed serves a receiver applying to store over tr, behind a
// delay line of delay each way, and returns the proxy's address and the
// proxy.
func serveDelayed(tb testing.TB, tr Transport, proc dcsync.Processor, delay time.Duration) *netdelay.Proxy {
	tb.Helper()
	s, err := dcsync.New(dcsync.Config{DC: "telecom", Peers: map[string]dcsync.Sender{"unicom": nopSender{}},
		Processor: proc})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	ln := Listen(tb)
	tr.Serve(tb, ln, s.Collector(), Secrets())
	p, err := netdelay.Start(netdelay.Config{Target: ln.Addr().String(), Delay: delay})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// TestPipe checks that a sender of tr is a dcsync.Pipeliner whose Pipe
// keeps many batches in flight over a long link and has them applied in
// the order begun.
func TestPipe(t *testing.T, tr Transport) {
	store := &orderStore{seen: map[string][]int{}}
	p := serveDelayed(t, tr, store, 5*time.Millisecond)
	pl, ok := tr.Sender(t, p.Addr(), "unicom", Secret, false).(dcsync.Pipeliner)
	if !ok {
		t.Fatal("the sender is not a dcsync.Pipeliner")
	}
	pipe := pl.Pipe()
	if pipe == nil {
		t.Fatal("no pipe")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const batches, size = 40, 25
	waits := make([]func() error, batches)
	version := uint64(time.Now().UnixMilli()) << 16
	for b := range batches {
		reqs := make([]*dcsync.Request, size)
		for i := range reqs {
			seq := b*size + i
			version++
			reqs[i] = &dcsync.Request{ID: fmt.Sprintf("pipe-%d", seq), Origin: "unicom", Key: fmt.Sprint("k", seq%7),
				Op: "set", Payload: []byte(strconv.Itoa(seq)), Version: version}
		}
		waits[b] = pipe.Begin(ctx, reqs)
	}
	for b, wait := range waits {
		if err := wait(); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
	}
	if n := store.n.Load(); n != batches*size {
		t.Fatalf("%d applied, want %d", n, batches*size)
	}
	if n := store.disorder(); n != 0 {
		t.Fatalf("%d writes applied after a later write to their key", n)
	}
}

// countingPipeliner counts the batches in flight on the pipes of a
// Pipeliner, and the most at once.
type countingPipeliner struct {
	dcsync.Pipeliner
	now, peak atomic.Int64
}

func (c *countingPipeliner) Pipe() dcsync.Pipe {
	p := c.Pipeliner.Pipe()
	if p == nil {
		return nil
	}
	return countingPipe{p, c}
}

type countingPipe struct {
	p dcsync.Pipe
	c *countingPipeliner
}

func (p countingPipe) Begin(ctx context.Context, reqs []*dcsync.Request) func() error {
	n := p.c.now.Add(1)
	for cur := p.c.peak.Load(); n > cur && !p.c.peak.CompareAndSwap(cur, n); cur = p.c.peak.Load() {
	}
	wait := p.p.Begin(ctx, reqs)
	return func() error {
		defer p.c.now.Add(-1)
		return wait()
	}
}

// TestWindowGrows checks that a Syncer sending over tr across a long link
// (50 ms each way) widens its window beyond where it starts: one lane
// whose batches are 256 KiB starts with 4 of them in flight (1 MiB), and
// must reach 8 while its queue is full.
func TestWindowGrows(t *testing.T, tr Transport) {
	var applied atomic.Int64
	p := serveDelayed(t, tr, dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error {
		applied.Add(1)
		return nil
	}), 50*time.Millisecond)
	pl, ok := tr.Sender(t, p.Addr(), "unicom", Secret, false).(dcsync.Pipeliner)
	if !ok {
		t.Fatal("the sender is not a dcsync.Pipeliner")
	}
	sender := &countingPipeliner{Pipeliner: pl}
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": sender},
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil }),
		Delivery:  dcsync.Delivery{Workers: 1, BatchSize: 256}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 12000
	payload := make([]byte, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range n {
		if err := s.Write(ctx, &dcsync.Request{Key: fmt.Sprint("k", i%100), Op: "set", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	for applied.Load() < n {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d applied", applied.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if peak := sender.peak.Load(); peak < 8 {
		t.Fatalf("at most %d batches in flight: the window did not grow", peak)
	}
	t.Logf("at most %d batches of 256 in flight, %d bytes in the line one way", sender.peak.Load(), p.Peak())
}
