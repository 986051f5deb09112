package http_test

import (
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
	return wiretest.Closing(tb, s, err)
}

func TestRestart(t *testing.T) { wiretest.TestRestart(t, transport{}) }

// BenchmarkReplicate measures replication between two datacenters on
// loopback; see wiretest.Bench. Delivery: batches of 256, four in flight.
func BenchmarkReplicate(b *testing.B) {
	wiretest.BenchSuite(b, transport{}, dcsync.Delivery{BatchSize: 256, Workers: 4}, 75000)
}

func TestPipe(t *testing.T) { wiretest.TestPipe(t, transport{}) }

func TestWindowGrows(t *testing.T) { wiretest.TestWindowGrows(t, transport{}) }
