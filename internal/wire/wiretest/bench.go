package wiretest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// BenchConfig shapes a replication benchmark.
type BenchConfig struct {
	// Compress gzips the batches.
	Compress bool
	// Rate paces the writes, per second; 0 writes as fast as the writers
	// can.
	Rate int
	// Writers is how many goroutines write when Rate is 0; default 4.
	Writers int
	// Delivery tunes the sending Syncer.
	Delivery dcsync.Delivery
}

// PayloadSize is the size of the benchmark's payloads.
const PayloadSize = 256

// Payload returns the i-th benchmark payload: the write's start time in
// its first 8 bytes, then a JSON document of the kind a service
// replicates — names, numbers, a random token — so that compression has
// something realistic to work on.
func Payload(i int, start time.Time) []byte {
	p := make([]byte, PayloadSize)
	copy(p, payloads[i%len(payloads)])
	binary.LittleEndian.PutUint64(p, uint64(start.UnixNano()))
	return p
}

// payloads are made once: building them would cost the benchmark more
// than replicating them.
var payloads = func() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike " +
		"november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu")
	out := make([][]byte, 4096)
	for i := range out {
		p := make([]byte, 8, PayloadSize)
		p = fmt.Appendf(p, `{"user":%d,"name":"%s %s","email":"u%d@example.com","balance":%d,"token":"%016x","note":"`,
			rng.IntN(1e6), words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1e6),
			rng.IntN(1e7), rng.Uint64())
		for len(p) < PayloadSize-2 {
			p = append(p, words[rng.IntN(len(words))]...)
			p = append(p, ' ')
		}
		out[i] = append(p[:PayloadSize-2], `"}`...)
	}
	return out
}()

// Bench measures replication from "unicom" to "telecom" over tr on
// loopback, both datacenters in this process with no-op processors: b.N
// writes in unicom, timed until telecom has applied them all. It reports
// writes/s, the bytes the server read and wrote per write, the CPU time
// per write of both datacenters, and, when paced, the lag from Write to
// the peer's apply (p50, p99).
func Bench(b *testing.B, tr Transport, cfg BenchConfig) {
	n := b.N
	lags := make([]int64, n) // nanoseconds, by arrival
	var got atomic.Int64
	recv, err := dcsync.New(dcsync.Config{DC: "telecom", Peers: map[string]dcsync.Sender{"unicom": nopSender{}},
		Processor: dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error {
			lag := time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(r.Payload))
			if i := got.Add(1) - 1; i < int64(n) {
				lags[i] = lag
			}
			return nil
		})})
	if err != nil {
		b.Fatal(err)
	}
	defer recv.Close()
	ln := &countListener{Listener: Listen(b)}
	kill := tr.Serve(b, ln, recv.Collector(), Secrets())
	defer kill()
	snd := tr.Sender(b, ln.Addr().String(), "unicom", Secret, cfg.Compress)
	src, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": snd},
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil }),
		Delivery:  cfg.Delivery})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()

	ctx := context.Background()
	// Warm up: connections, buffers, the collector's maps; then count
	// from zero again.
	const warm = 2000
	for i := range warm {
		if err := src.Write(ctx, &dcsync.Request{Key: "warm:" + strconv.Itoa(i), Payload: Payload(i, time.Now())}); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < warm {
		time.Sleep(time.Millisecond)
	}
	got.Store(0)
	ln.bytes.Store(0)
	runtime.GC()
	write := func(i int) {
		req := &dcsync.Request{Key: "user:" + strconv.Itoa(i%100000), Op: "set", Payload: Payload(i, time.Now())}
		if err := src.Write(ctx, req); err != nil {
			b.Error(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	if cfg.Rate > 0 {
		// Write what is due, then nap: a sleep per write would cost more
		// than the write, and clients arrive in bunches anyway.
		for i := 0; i < n; {
			due := min(n, int(time.Since(start).Seconds()*float64(cfg.Rate))+1)
			for ; i < due; i++ {
				write(i)
			}
			if i < n {
				time.Sleep(100 * time.Microsecond)
			}
		}
	} else {
		writers := cfg.Writers
		if writers <= 0 {
			writers = 4
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					write(i)
				}
			})
		}
		wg.Wait()
	}
	deadline := time.Now().Add(2*time.Minute + time.Duration(n)*10*time.Microsecond)
	for got.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("telecom applied %d of %d writes", got.Load(), n)
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()

	b.ReportMetric(float64(n)/elapsed.Seconds(), "writes/s")
	if cfg.Rate > 0 { // unpaced, the lag is only how long the queue is
		slices.Sort(lags)
		b.ReportMetric(float64(lags[n/2])/1e6, "p50-lag-ms")
		b.ReportMetric(float64(lags[min(n-1, n*99/100)])/1e6, "p99-lag-ms")
	}
	b.ReportMetric(float64(ln.bytes.Load())/float64(n), "wire-B/write")
	// CPU per write, both datacenters together: what bounds throughput on a
	// busy machine, where writes/s also measures the neighbours.
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(n), "cpu-µs/write")
}

// countingCollector counts what it collects and applies nothing.
type countingCollector struct{ n atomic.Int64 }

func (c *countingCollector) Collect(_ context.Context, _ string, reqs []*dcsync.Request) error {
	c.n.Add(int64(len(reqs)))
	return nil
}

// BenchTransport measures the CPU time per write of a transport alone,
// both sides in this process on loopback: batches of size writes (256-byte
// payloads, fresh requests as a Syncer sends them) begun on one Pipe of
// tr's Sender, four in flight, to a server whose Collector does nothing.
// It is what the transport adds to the core's CPU per write.
func BenchTransport(b *testing.B, tr Transport, size int) {
	col := &countingCollector{}
	ln := Listen(b)
	defer tr.Serve(b, ln, col, Secrets())()
	snd := tr.Sender(b, ln.Addr().String(), "unicom", Secret, false)
	pl, ok := snd.(dcsync.Pipeliner)
	if !ok {
		b.Fatalf("%T is not a dcsync.Pipeliner", snd)
	}
	pipe := pl.Pipe()
	batches := make([][]*dcsync.Request, 64)
	for i := range batches {
		batches[i] = make([]*dcsync.Request, size)
		for j := range batches[i] {
			n := i*size + j
			batches[i][j] = &dcsync.Request{ID: fmt.Sprintf("0192f0c4-7d2e-7a3b-8c4d-%012d", n), Origin: "unicom",
				Key: "user:" + strconv.Itoa(n%100000), Op: "set", Payload: Payload(n, time.Now()), Version: uint64(1e18) + uint64(n)}
		}
	}
	const window = 4
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

// countListener counts the bytes its connections read and write.
type countListener struct {
	net.Listener
	bytes atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, n: &l.bytes}, nil
}

type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// BenchSuite runs the replication benchmarks of a transport: as fast as
// possible without and with compression, and paced at rate writes/s for
// the lag (half the throughput target).
func BenchSuite(b *testing.B, tr Transport, d dcsync.Delivery, rate int) {
	b.Run("max", func(b *testing.B) { Bench(b, tr, BenchConfig{Delivery: d}) })
	b.Run("max-gzip", func(b *testing.B) { Bench(b, tr, BenchConfig{Delivery: d, Compress: true}) })
	b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { Bench(b, tr, BenchConfig{Delivery: d, Rate: rate}) })
}
