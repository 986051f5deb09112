package http_test

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// countingCollector counts what it collects and applies nothing: the
// transport's own cost, without the core's.
type countingCollector struct{ n atomic.Int64 }

func (c *countingCollector) Collect(_ context.Context, _ string, reqs []*dcsync.Request) error {
	c.n.Add(int64(len(reqs)))
	return nil
}

// BenchmarkTransportCPU measures the CPU time per write of the transport
// alone, both sides in this process on loopback: a pipe with 4 batches of
// 256 writes (256-byte payloads, as the benchmark command's) in flight to
// a handler whose Collector does nothing. It is the share transport/http
// adds to dcsync/http's CPU per write over dcsync/memory's.
func BenchmarkTransportCPU(b *testing.B) {
	for _, size := range []int{16, 256} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) { benchTransportCPU(b, size) })
	}
}

func benchTransportCPU(b *testing.B, size int) {
	col := &countingCollector{}
	ln := wiretest.Listen(b)
	srv := &http.Server{Handler: dchttp.NewHandler(col, dchttp.HandlerConfig{Secrets: wiretest.Secrets(), DC: "telecom"})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	s, err := dchttp.NewSender(dchttp.SenderConfig{URL: "http://" + ln.Addr().String() + "/dcsync",
		From: "unicom", To: "telecom", Secret: wiretest.Secret})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pipe := s.Pipe()

	// Batches as a Syncer sends them: fresh requests, so that nothing is
	// warm in the cache that would not be.
	const window = 4
	batches := make([][]*dcsync.Request, 64)
	for i := range batches {
		batches[i] = make([]*dcsync.Request, size)
		for j := range batches[i] {
			n := i*size + j
			batches[i][j] = &dcsync.Request{ID: "0192f0c4-7d2e-7a3b-8c4d-" + strconv.FormatInt(1e11+int64(n), 10)[:12],
				Origin: "unicom", Key: "user:" + strconv.Itoa(n%100000), Op: "set",
				Payload: wiretest.Payload(n, time.Now()), Version: uint64(1e18) + uint64(n)}
		}
	}
	ctx := context.Background()
	waits := make(chan func() error, window)
	done := make(chan error, 1)
	go func() {
		var err error
		for w := range waits {
			if e := w(); e != nil && err == nil {
				err = e
			}
		}
		done <- err
	}()
	n := b.N/size + 1
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range n {
		waits <- pipe.Begin(ctx, batches[i%len(batches)])
	}
	close(waits)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if got := col.n.Load(); got != int64(n*size) {
		b.Fatalf("collected %d writes of %d", got, n*size)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*size), "cpu-ns/write")
}

// cpuTime returns the CPU time this process used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
