package multiinstance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/monitor"
)

// The shape of every test here: two datacenters, three instances each,
// every instance writing, one instance of each datacenter killed mid-load.
const (
	instances = 3
	writers   = 2                    // goroutines writing through each instance
	maxWrites = 1000                 // of each, at most
	pause     = 2 * time.Millisecond // between writes of one writer, so the load lasts
	phase     = 300                  // writes of a datacenter before the kill, and after
	bound     = 60 * time.Second
)

var dcs = [2]string{"unicom", "telecom"}

func peerOf(dc string) string {
	if dc == dcs[0] {
		return dcs[1]
	}
	return dcs[0]
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// state is a datacenter's database, shared by its instances: the writes
// applied in it.
type state struct {
	mu      sync.Mutex
	applied map[string]bool
}

func (s *state) missing(ids []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range ids {
		if !s.applied[id] {
			out = append(out, id)
		}
	}
	return out
}

// processor applies writes to its datacenter's state and counts what its
// instance applied: the datacenter's own writes, and the peer's.
type processor struct {
	dc          string
	st          *state
	local, peer atomic.Int64
}

func (p *processor) Process(_ context.Context, r *dcsync.Request) error {
	p.st.mu.Lock()
	p.st.applied[r.ID] = true
	p.st.mu.Unlock()
	if r.Origin == p.dc {
		p.local.Add(1)
	} else {
		p.peer.Add(1)
	}
	return nil
}

// inst is one service instance: its Syncer, Processor and reconciler, and
// how to kill it.
type inst struct {
	dc      string
	n       int
	sync    *dcsync.Syncer
	proc    *processor
	lock    *killableLock
	stopRec func()      // stops the reconciler, waiting for it
	kill    func()      // kills what the transport runs: servers, workers
	killed  atomic.Bool // set before it is killed
	acked   atomic.Int64
	claimed func() uint64   // entries its Node claimed from dead consumers (Redis wiring)
	streams monitor.Streams // its Node (Redis wiring)
}

func (i *inst) String() string { return fmt.Sprintf("%s/%d", i.dc, i.n) }

// errKilled is what a killed instance's lock answers.
var errKilled = errors.New("instance killed")

// killableLock is an instance's leader lock, which dies with it: as with
// kill -9, a killed reconciler neither renews nor releases the lock, and
// another takes over once it expires.
type killableLock struct {
	dcsync.LeaderLock
	dead atomic.Bool
}

func (l *killableLock) Acquire(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	if l.dead.Load() {
		return false, errKilled
	}
	return l.LeaderLock.Acquire(ctx, token, ttl)
}

func (l *killableLock) Release(ctx context.Context, token string) error {
	if l.dead.Load() {
		return nil
	}
	return l.LeaderLock.Release(ctx, token)
}

// passes records, per datacenter, which instance each leader pass ran in,
// in order, and how many passes each instance ran as a follower.
type passes struct {
	mu        sync.Mutex
	leaders   []int
	followers [instances]int
}

func (p *passes) snapshot() ([]int, [instances]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.leaders), p.followers
}

// passObserver records an instance's reconciler passes.
type passObserver struct {
	dcsync.NopObserver
	p *passes
	n int
}

func (o passObserver) ReconcileDone(_ context.Context, _ string, rep dcsync.Report, err error) {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	switch {
	case rep.Leader:
		o.p.leaders = append(o.p.leaders, o.n)
	case err == nil:
		o.p.followers[o.n]++
	}
}

// reconcilerConfig is an instance's reconciler: a pass every 2s, holding
// the lock for three intervals; writes younger than 3s are left to the
// senders.
func reconcilerConfig(dc string, n int, peer dcsync.Sender, audit dcsync.AuditLog, lock *killableLock,
	cps dcsync.CheckpointStore, p *passes) dcsync.ReconcilerConfig {
	return dcsync.ReconcilerConfig{DC: dc, Peers: map[string]dcsync.Sender{peerOf(dc): peer}, Audit: audit,
		Interval: 2 * time.Second, Grace: 3 * time.Second, Timeout: 5 * time.Second,
		Backoff: dcsync.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 3},
		Lock:    lock, Checkpoints: cps, Logger: quiet, Observer: passObserver{p: p, n: n}}
}

// background runs run until stop, which cancels its context, waits for it
// and checks it returned the context's error.
func background(t *testing.T, what string, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("%s returned %v", what, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// world is both datacenters: their states, instances and reconciler passes.
type world struct {
	states map[string]*state
	insts  map[string][]*inst
	passes map[string]*passes

	mu    sync.Mutex
	acked []string // IDs of the writes acknowledged, in both datacenters
}

func newWorld() *world {
	w := &world{states: map[string]*state{}, insts: map[string][]*inst{}, passes: map[string]*passes{}}
	for _, dc := range dcs {
		w.states[dc] = &state{applied: map[string]bool{}}
		w.passes[dc] = &passes{}
	}
	return w
}

// newProcessor returns the Processor of an instance of dc.
func (w *world) newProcessor(dc string) *processor { return &processor{dc: dc, st: w.states[dc]} }

// until waits for cond, failing the test past bound with what describe says.
func until(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s; %s", bound, what, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) ackedIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// writes waits until each datacenter acknowledged n more writes, and
// returns how many each had acknowledged before.
func (w *world) writes(t *testing.T, more int64) map[string]int64 {
	t.Helper()
	base := map[string]int64{}
	for _, dc := range dcs {
		base[dc] = w.ackedIn(dc)
	}
	for _, dc := range dcs {
		n := base[dc] + more
		until(t, fmt.Sprintf("%d writes of %s", n, dc), func() bool { return w.ackedIn(dc) >= n },
			func() string { return fmt.Sprint(w.ackedIn(dc), " acknowledged") })
	}
	return base
}

func (w *world) ackedIn(dc string) int64 {
	var n int64
	for _, in := range w.insts[dc] {
		n += in.acked.Load()
	}
	return n
}

// run writes through every instance of both datacenters; kills, mid-load,
// the instance of each datacenter whose reconciler leads; and checks that
// every acknowledged write reaches both datacenters, that one reconciler
// led per datacenter before the kill and another one after, and reports
// how the work spread over the instances.
func (w *world) run(t *testing.T) {
	// Every reconciler has run a pass; one of each datacenter leads.
	for _, dc := range dcs {
		until(t, dc+"'s reconcilers' first passes", func() bool {
			leaders, followers := w.passes[dc].snapshot()
			if len(leaders) == 0 {
				return false
			}
			for n, f := range followers {
				if n != leaders[0] && f == 0 {
					return false
				}
			}
			return true
		}, func() string { return fmt.Sprint(w.passes[dc].snapshot()) })
	}

	ctx := context.Background()
	var wg sync.WaitGroup
	var stop atomic.Bool
	for _, dc := range dcs {
		for _, in := range w.insts[dc] {
			for k := range writers {
				wg.Go(func() {
					for j := range maxWrites {
						if in.killed.Load() || stop.Load() {
							return
						}
						req := &dcsync.Request{Key: fmt.Sprintf("%s-%d-%d-%d", dc, in.n, k, j), Op: "set", Payload: []byte("v")}
						if err := in.sync.Write(ctx, req); err != nil {
							continue // not acknowledged: the instance is going down
						}
						in.acked.Add(1)
						w.mu.Lock()
						w.acked = append(w.acked, req.ID)
						w.mu.Unlock()
						time.Sleep(pause)
					}
				})
			}
		}
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // before the instances close, should the test fail

	// Mid-load, kill each datacenter's leader.
	w.writes(t, phase)
	killedAt := map[string]int{}
	victim := map[string]*inst{}
	for _, dc := range dcs {
		leaders, _ := w.passes[dc].snapshot()
		in := w.insts[dc][leaders[0]]
		victim[dc] = in
		in.killed.Store(true)
		in.lock.dead.Store(true)
		in.stopRec()
		leaders, _ = w.passes[dc].snapshot()
		killedAt[dc] = len(leaders)
		in.kill()
		t.Logf("killed %s, its reconciler the leader, after %d writes of %s were acknowledged", in, w.ackedIn(dc), dc)
	}
	after := w.writes(t, phase)
	stop.Store(true)
	wg.Wait()

	// Another instance takes the lead.
	for _, dc := range dcs {
		until(t, dc+"'s new leader", func() bool {
			leaders, _ := w.passes[dc].snapshot()
			return len(leaders) > killedAt[dc]
		}, func() string { return fmt.Sprint(w.passes[dc].snapshot()) })
	}

	// Every acknowledged write is in both datacenters.
	acked := w.ackedIDs()
	for _, dc := range dcs {
		var missing []string
		until(t, "every acknowledged write in "+dc, func() bool {
			missing = w.states[dc].missing(acked)
			return len(missing) == 0
		}, func() string {
			return fmt.Sprintf("%d of %d missing, such as %v", len(missing), len(acked), missing[:1])
		})
	}
	t.Logf("%d acknowledged writes in both datacenters (acknowledged per datacenter by the kills: %v)", len(acked), after)

	for _, dc := range dcs {
		leaders, followers := w.passes[dc].snapshot()
		before, after := distinct(leaders[:killedAt[dc]]), distinct(leaders[killedAt[dc]:])
		if len(before) != 1 || len(after) != 1 || before[0] == after[0] {
			t.Errorf("%s: leader passes by instances %v before the kill, %v after; want one, then another", dc, before, after)
		}
		t.Logf("%s: leader passes: %d by instance %v before the kill, %d by instance %v after; follower passes per instance %v",
			dc, killedAt[dc], before, len(leaders)-killedAt[dc], after, followers)
		var local, peer []string
		for _, in := range w.insts[dc] {
			mark := ""
			if in == victim[dc] {
				mark = " (killed)"
			}
			local = append(local, fmt.Sprintf("%d%s", in.proc.local.Load(), mark))
			peer = append(peer, fmt.Sprintf("%d%s", in.proc.peer.Load(), mark))
		}
		t.Logf("%s per instance: own writes applied %s; %s's writes applied %s",
			dc, strings.Join(local, " "), peerOf(dc), strings.Join(peer, " "))
	}
}

func distinct(ns []int) []int {
	out := slices.Clone(ns)
	slices.Sort(out)
	return slices.Compact(out)
}
