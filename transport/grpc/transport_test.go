package grpc_test

import (
	"net"
	"testing"

	"google.golang.org/grpc"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcsyncgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// transport adapts this package to the shared tests and benchmarks.
type transport struct{ workers int }

func (tr transport) Serve(tb testing.TB, ln net.Listener, c dcsync.Collector, secrets map[string][]byte) func() {
	cfg := dcsyncgrpc.ServerConfig{Secrets: secrets, Workers: tr.workers}
	srv := grpc.NewServer(dcsyncgrpc.ServerOptions(cfg)...)
	if err := dcsyncgrpc.Register(srv, c, cfg); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	return srv.Stop
}

func (transport) Sender(tb testing.TB, addr, from string, secret []byte, compress bool) dcsync.Sender {
	s, err := dcsyncgrpc.NewSender(dcsyncgrpc.SenderConfig{Target: addr, From: from, Secret: secret, Compress: compress})
	return wiretest.Closing(tb, s, err)
}

func TestRestart(t *testing.T) { wiretest.TestRestart(t, transport{}) }

// BenchmarkReplicate measures replication between two datacenters on
// loopback; see wiretest.Bench. Delivery: batches of 256, four in flight.
func BenchmarkReplicate(b *testing.B) {
	wiretest.BenchSuite(b, transport{}, dcsync.Delivery{BatchSize: 256, Workers: 4}, 100000)
}

func TestPipe(t *testing.T) { wiretest.TestPipe(t, transport{}) }

func TestWindowGrows(t *testing.T) { wiretest.TestWindowGrows(t, transport{}) }
