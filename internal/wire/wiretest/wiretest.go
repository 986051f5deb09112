// Package wiretest holds what the tests and benchmarks of both RPC
// transports share: a recording processor, a two-datacenter pair on
// loopback, the tests every Sender must pass, the bodies every server must
// refuse, the server-restart test and the replication benchmark. Each
// transport adapts itself through the Transport interface.
package wiretest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/demo"
	"github.com/dcsync/dcsync/internal/wire"
)

// Transport starts the server and the senders of one RPC transport.
type Transport interface {
	// Serve serves c on ln for the peers in secrets, in the background.
	// The returned function kills the server: listener and connections
	// close at once, without draining.
	Serve(tb testing.TB, ln net.Listener, c dcsync.Collector, secrets map[string][]byte) (kill func())
	// Sender returns a sender from datacenter from to the server at addr.
	Sender(tb testing.TB, addr, from string, secret []byte, compress bool) dcsync.Sender
}

// Secret is the secret the tests' datacenters share.
var Secret = []byte("test secret, 32 bytes of it.....")

// Store is a processor that remembers how many times each write was
// applied and the last-writer-wins value of each key: the examples'
// stand-in database, with a total count to wait for and a hook to act
// in the middle of an apply.
type Store struct {
	*demo.Store
	count atomic.Int64

	mu      sync.Mutex
	onApply func(n int64) // called after each apply with the count so far
}

// NewStore returns an empty Store. It fails no apply unless told to with
// SetFailRate.
func NewStore() *Store { return &Store{Store: demo.NewStore("", 0)} }

// Process implements dcsync.Processor.
func (s *Store) Process(ctx context.Context, r *dcsync.Request) error {
	if err := s.Store.Process(ctx, r); err != nil {
		return err
	}
	n := s.count.Add(1)
	s.mu.Lock()
	hook := s.onApply
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return nil
}

// OnApply sets a function called after every apply with the number of
// applies so far.
func (s *Store) OnApply(f func(n int64)) {
	s.mu.Lock()
	s.onApply = f
	s.mu.Unlock()
}

// Count returns how many applies happened, duplicates included.
func (s *Store) Count() int64 { return s.count.Load() }

// WaitCount waits until the store counted n applies, polling, for at most
// d; it reports whether it got there.
func (s *Store) WaitCount(n int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for s.Count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Listen returns a loopback listener on a free port.
func Listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// Relisten listens again on addr, which a killed server just released,
// retrying a few times while the kernel lets go of it.
func Relisten(tb testing.TB, addr string) net.Listener {
	tb.Helper()
	var err error
	for range 100 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("relisten on %s: %v", addr, err)
	return nil
}

// nopSender stands for the direction a test does not use.
type nopSender struct{}

func (nopSender) Send(context.Context, []*dcsync.Request) error { return nil }
func (nopSender) Close() error                                  { return nil }

// Receiver returns a Syncer for the receiving datacenter "telecom" that
// takes batches from "unicom" and applies them to store.
func Receiver(tb testing.TB, store *Store, audit dcsync.AuditLog) *dcsync.Syncer {
	tb.Helper()
	s, err := dcsync.New(dcsync.Config{DC: "telecom", Peers: map[string]dcsync.Sender{"unicom": nopSender{}},
		Processor: store, Audit: audit})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Secrets are the secrets the receiver "telecom" knows.
func Secrets() map[string][]byte { return map[string][]byte{"unicom": Secret} }

// LogBuffer collects log output from the servers' goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  []byte
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

// String returns what was written.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

var batches atomic.Int64

// Batch returns n valid writes from unicom, and their serialized Batch.
func Batch(tb testing.TB, n int) ([]*dcsync.Request, []byte) {
	tb.Helper()
	now := time.Now()
	reqs := make([]*dcsync.Request, n)
	for i := range reqs {
		reqs[i] = &dcsync.Request{ID: fmt.Sprintf("req-%d-%d", batches.Add(1), i), Origin: "unicom",
			Key: fmt.Sprintf("key-%d", i), Op: "set", Payload: []byte("value"), Version: uint64(now.UnixMilli()) << 16}
	}
	body, err := wire.Encode(nil, reqs, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	if err != nil {
		tb.Fatal(err)
	}
	return reqs, body
}
