// Package memory connects Syncers in one process: a dcsync.Sender that
// delivers straight into another Syncer's Collector. It is the transport of
// the quickstart and of tests, and it injects faults on demand — failed
// sends, acknowledgements lost after apply, delays, duplicates, reordering —
// so a host can test its processors against what real networks do. Import
// it as memtransport, apart from the memory audit log (memaudit):
//
//	import memtransport "github.com/dcsync/dcsync/transport/memory"
package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
)

// ErrInjected is the error of a fault injected by Faults.
var ErrInjected = errors.New("memory: injected fault")

// Faults says what goes wrong on a link, per batch. Rates are between 0
// and 1. The zero value is a perfect link.
type Faults struct {
	Fail      float64       // batches failed before delivery
	DropAck   float64       // batches applied, then reported failed
	Duplicate float64       // batches delivered twice
	Reorder   float64       // batches delivered in shuffled order
	Delay     time.Duration // each batch waits up to this long
}

// Network is a set of datacenters in one process. Create it with
// NewNetwork; attach each Syncer's Collector, then take Senders for its
// links.
type Network struct {
	mu         sync.RWMutex
	collectors map[string]dcsync.Collector
	faults     map[[2]string]Faults
	rng        *rand.Rand // guarded by rngMu
	rngMu      sync.Mutex
}

// NewNetwork returns an empty Network whose faults draw from a source seeded
// with seed, so a fault schedule can be replayed.
func NewNetwork(seed uint64) *Network {
	return &Network{collectors: map[string]dcsync.Collector{}, faults: map[[2]string]Faults{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Attach makes c receive what is sent to dc.
func (n *Network) Attach(dc string, c dcsync.Collector) {
	n.mu.Lock()
	n.collectors[dc] = c
	n.mu.Unlock()
}

// SetFaults sets the faults of the link from one datacenter to another.
func (n *Network) SetFaults(from, to string, f Faults) {
	n.mu.Lock()
	n.faults[[2]string{from, to}] = f
	n.mu.Unlock()
}

// SetFaultsBetween sets f on every link, both ways, between two of dcs.
func (n *Network) SetFaultsBetween(f Faults, dcs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range dcs {
		for _, b := range dcs {
			if a != b {
				n.faults[[2]string{a, b}] = f
			}
		}
	}
}

// Peers returns the Senders from one datacenter to each of dcs but itself,
// by name: Config.Peers of a full mesh.
func (n *Network) Peers(from string, dcs ...string) map[string]dcsync.Sender {
	peers := map[string]dcsync.Sender{}
	for _, to := range dcs {
		if to != from {
			peers[to] = n.Sender(from, to)
		}
	}
	return peers
}

// Sender returns a Sender from one datacenter to another. The target need
// not be attached yet: it is looked up at each Send.
func (n *Network) Sender(from, to string) *Sender {
	return &Sender{net: n, from: from, to: to}
}

// chance reports true with probability p.
func (n *Network) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return n.rng.Float64() < p
}

func (n *Network) shuffle(perm []int) {
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	n.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
}

func (n *Network) jitter(d time.Duration) time.Duration {
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return time.Duration(n.rng.Int64N(int64(d) + 1))
}

// Sender delivers from one datacenter of a Network to another.
type Sender struct {
	net      *Network
	from, to string
	mu       sync.RWMutex
	closed   bool
}

// Send implements dcsync.Sender. The receiver gets copies of the requests,
// as it would over a network; payloads are shared, as requests are not
// modified once written.
func (s *Sender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("memory: sender %s->%s closed", s.from, s.to)
	}
	s.net.mu.RLock()
	c, f := s.net.collectors[s.to], s.net.faults[[2]string{s.from, s.to}]
	s.net.mu.RUnlock()
	if c == nil {
		return fmt.Errorf("memory: datacenter %q not attached", s.to)
	}
	if f.Delay > 0 {
		t := time.NewTimer(s.net.jitter(f.Delay))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if s.net.chance(f.Fail) {
		return fmt.Errorf("%w: send %s->%s failed", ErrInjected, s.from, s.to)
	}
	var perm []int
	if s.net.chance(f.Reorder) {
		perm = make([]int, len(reqs))
		for i := range perm {
			perm[i] = i
		}
		s.net.shuffle(perm)
	}
	err := c.Collect(ctx, s.from, copyBatch(reqs, perm))
	if s.net.chance(f.Duplicate) {
		err = c.Collect(ctx, s.from, copyBatch(reqs, perm))
	}
	if err == nil && s.net.chance(f.DropAck) {
		return fmt.Errorf("%w: acknowledgement %s->%s lost", ErrInjected, s.from, s.to)
	}
	return unpermute(err, perm)
}

// Close implements dcsync.Sender; later Sends fail.
func (s *Sender) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// copyBatch copies reqs, in the order perm gives when it is not nil, with
// two allocations for the whole batch.
func copyBatch(reqs []*dcsync.Request, perm []int) []*dcsync.Request {
	slab := make([]dcsync.Request, len(reqs))
	out := make([]*dcsync.Request, len(reqs))
	for i := range reqs {
		src := i
		if perm != nil {
			src = perm[i]
		}
		slab[i] = *reqs[src]
		out[i] = &slab[i]
	}
	return out
}

// unpermute maps the per-request errors of a shuffled batch back to the
// order the caller sent.
func unpermute(err error, perm []int) error {
	var be *dcsync.BatchError
	if perm == nil || !errors.As(err, &be) {
		return err
	}
	errs := make([]error, len(be.Errs))
	for i, e := range be.Errs {
		errs[perm[i]] = e
	}
	return &dcsync.BatchError{Errs: errs}
}
