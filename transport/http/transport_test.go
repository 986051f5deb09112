package http_test

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcsynchttp "github.com/dcsync/dcsync/transport/http"
)

// transport adapts this package to the shared tests and benchmarks.
type transport struct{}

func (transport) Serve(tb testing.TB, ln net.Listener, c dcsync.Collector, secrets map[string][]byte) func() {
	srv := &http.Server{Handler: dcsynchttp.NewHandler(c, dcsynchttp.HandlerConfig{Secrets: secrets})}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return func() { _ = srv.Close() }
}

func (transport) Sender(tb testing.TB, addr, from string, secret []byte, compress bool) dcsync.Sender {
	s, err := dcsynchttp.NewSender(dcsynchttp.SenderConfig{URL: "http://" + addr + "/", From: from,
		Secret: secret, Compress: compress})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRestart(t *testing.T) { wiretest.TestRestart(t, transport{}) }

func BenchmarkSweep(b *testing.B) {
	for _, bs := range []int{256, 1024} {
		for _, w := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("bs=%d/w=%d", bs, w), func(b *testing.B) {
				wiretest.Bench(b, transport{}, wiretest.BenchConfig{Delivery: dcsync.Delivery{BatchSize: bs, Workers: w}})
			})
		}
	}
}

func BenchmarkReplicate(b *testing.B) {
	b.Run("max", func(b *testing.B) { wiretest.Bench(b, transport{}, wiretest.BenchConfig{}) })
	b.Run("gzip", func(b *testing.B) { wiretest.Bench(b, transport{}, wiretest.BenchConfig{Compress: true}) })
	b.Run("rate=75k", func(b *testing.B) { wiretest.Bench(b, transport{}, wiretest.BenchConfig{Rate: 75000}) })
}
