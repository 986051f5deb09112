// Package wiretest holds what the tests and benchmarks of both RPC
// transports share beyond transporttest's conformance suite (which Kit
// adapts them to): a two-datacenter pair on loopback, the authentication
// tests of their Senders, the bodies every server must refuse, the
// server-restart test and the replication benchmark. Each transport adapts
// itself through the Transport interface.
package wiretest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/transport/transporttest"
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

// Store is the recording processor of transporttest.
type Store = transporttest.Store

// NewStore returns an empty Store.
func NewStore() *Store { return transporttest.NewStore() }

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
	return transporttest.Receiver(tb, store, audit)
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

// Batch returns n valid writes from unicom, and their serialized Batch.
func Batch(tb testing.TB, n int) ([]*dcsync.Request, []byte) {
	tb.Helper()
	reqs := transporttest.Batch(n)
	body, err := wire.Encode(nil, reqs, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	if err != nil {
		tb.Fatal(err)
	}
	return reqs, body
}

// Kit adapts tr to transporttest's conformance suite, with the secret the
// tests' datacenters share.
func Kit(tr Transport) transporttest.Transport {
	return transporttest.Transport{
		Serve: func(tb testing.TB, c dcsync.Collector) (string, func()) {
			ln := Listen(tb)
			return ln.Addr().String(), tr.Serve(tb, ln, c, Secrets())
		},
		Sender: func(tb testing.TB, addr string) dcsync.Sender {
			return tr.Sender(tb, addr, transporttest.From, Secret, false)
		},
	}
}
