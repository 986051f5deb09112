package grpc_test

import (
	"fmt"
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
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRestart(t *testing.T) { wiretest.TestRestart(t, transport{}) }

func BenchmarkSweep(b *testing.B) {
	for _, bs := range []int{256, 1024} {
		for _, w := range []int{1, 2, 4} {
			for _, sw := range []int{1, 2} {
				b.Run(fmt.Sprintf("bs=%d/w=%d/sw=%d", bs, w, sw), func(b *testing.B) {
					wiretest.Bench(b, transport{workers: sw}, wiretest.BenchConfig{Delivery: dcsync.Delivery{BatchSize: bs, Workers: w}})
				})
			}
		}
	}
}

func BenchmarkReplicate(b *testing.B) {
	b.Run("max", func(b *testing.B) { wiretest.Bench(b, transport{}, wiretest.BenchConfig{}) })
	b.Run("gzip", func(b *testing.B) { wiretest.Bench(b, transport{}, wiretest.BenchConfig{Compress: true}) })
	b.Run("rate=100k", func(b *testing.B) { wiretest.Bench(b, transport{}, wiretest.BenchConfig{Rate: 100000}) })
}
