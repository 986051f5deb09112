package redis

import (
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

// BenchmarkReplicate measures end-to-end replicated writes per second
// between two datacenters over Redis Streams, each with its own
// redis-server, with 256-byte payloads written in both datacenters at once:
// a write counts when the peer's Processor has applied it. In the same run
// it measures the ceiling, pipelined XADD of the same payloads into one of
// the two servers, with redis-benchmark, and reports both and their ratio,
// with the CPU time each write cost this process and the two servers.
//
//	go test -run '^$' -bench Replicate -benchtime 200000x -count 5 ./transport/redis
func BenchmarkReplicate(b *testing.B) {
	var remote atomic.Int64
	u, tc := pairWith(b, func(c *NodeConfig) {
		c.Block = 100 * time.Millisecond
		c.ClaimIdle = 30 * time.Second
		c.MaxAttempts = 5
		c.TrimInterval = 100 * time.Millisecond
	}, newCounter("unicom", &remote), newCounter("telecom", &remote))
	ceiling := xaddCeiling(b, u.redis.Addr(), 256)
	payload := []byte(strings.Repeat("x", 256))
	keys := make([]string, 100000) // made ahead: the writers' own work is not the transport's
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	const writers = 128
	var next atomic.Int64
	goCPU0, redisCPU0 := processCPU(), redisCPU(b, u, tc)
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		d := []*dc{u, tc}[w%2]
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				req := &dcsync.Request{Key: keys[i%int64(len(keys))], Op: "set", Payload: payload}
				if err := d.sync.Write(context.Background(), req); err != nil {
					b.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(b, 5*time.Minute, func() bool { return remote.Load() >= int64(b.N) },
		func() string { return fmt.Sprintf("%d of %d writes replicated", remote.Load(), b.N) })
	elapsed := time.Since(begin)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "writes/s")
	b.ReportMetric(ceiling, "xadd-ceiling/s")
	b.ReportMetric(100*rate/ceiling, "%ceiling")
	b.ReportMetric((processCPU()-goCPU0).Seconds()*1e6/float64(b.N), "go-cpu-µs/write")
	b.ReportMetric((redisCPU(b, u, tc)-redisCPU0).Seconds()*1e6/float64(b.N), "redis-cpu-µs/write")
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns the CPU time the servers of dcs have used, from INFO.
func redisCPU(b testing.TB, dcs ...*dc) time.Duration {
	var total time.Duration
	for _, d := range dcs {
		info, err := d.client.Info(context.Background(), "cpu").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				total += time.Duration(f * float64(time.Second))
			}
		}
	}
	return total
}

// counter is the benchmark's Processor: it counts the writes applied from
// other datacenters and does nothing else, so that the benchmark measures
// the transport rather than a store.
type counter struct {
	dc     string
	remote *atomic.Int64
}

func newCounter(dc string, remote *atomic.Int64) *counter { return &counter{dc: dc, remote: remote} }

func (c *counter) Process(_ context.Context, r *dcsync.Request) error {
	if r.Origin != c.dc {
		c.remote.Add(1)
	}
	return nil
}

// xaddCeiling runs redis-benchmark against addr for pipelined XADD of
// size-byte values (-P 64, 200000 requests) and returns its requests/s.
func xaddCeiling(b *testing.B, addr string, size int) float64 {
	b.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("redis-benchmark", "-h", host, "-p", port, "-P", "64", "-n", "200000",
		"--csv", "XADD", "dcsync-bench-ceiling", "*", "f", strings.Repeat("x", size)).Output()
	if err != nil {
		b.Fatalf("redis-benchmark (scripts/redis.sh installs it): %v", err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil || len(rows) < 2 || len(rows[1]) < 2 {
		b.Fatalf("redis-benchmark output %q: %v", out, err)
	}
	rps, err := strconv.ParseFloat(rows[1][1], 64)
	if err != nil {
		b.Fatalf("redis-benchmark rps %q: %v", rows[1][1], err)
	}
	c := newClient(b, addr)
	c.Del(context.Background(), "dcsync-bench-ceiling")
	return rps
}
