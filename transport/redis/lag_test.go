package redis

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/netdelay"
	"github.com/dcsync/dcsync/internal/testserver"
)

var (
	lagRate  = flag.Float64("lag.rate", 50000, "BenchmarkLagStages: offered writes/s")
	lagDelay = flag.Duration("lag.delay", 20*time.Millisecond, "BenchmarkLagStages: one-way delay to the peer's Redis")
	lagWarm  = flag.Int("lag.warm", 0, "BenchmarkLagStages: writes at full speed, all applied, before the measured ones")
	lagSteps = flag.Int("lag.buckets", 0, "BenchmarkLagStages: log each hop's p50/max in this many buckets of write order")
)

// BenchmarkLagStages writes b.N writes in unicom at a fixed rate (-lag.rate)
// with 64 writers over 4096 keys, as the benchmark command's lag phase
// does, with unicom's reship workers reaching telecom's Redis through a
// delay line (-lag.delay one way), on NodeConfig's defaults. It reports the
// lag (Write to telecom's Processor) and splits it into the hops, from the
// stream entry IDs (milliseconds) each write was carried in: Write to
// unicom's outbound stream, outbound to telecom's inbound stream (the
// reship hop and the link), inbound to telecom's apply stream (the collect
// hop) and apply stream to Processor (the apply hop). The "warm" figures
// leave out the writes of the first 500 ms, which pay for the connections
// and groups being set up. With -lag.warm, that many writes go first at
// full speed, all applied, and then debug.FreeOSMemory, as the benchmark
// command's lag phase does; -lag.buckets logs each hop's p50/max in
// buckets of the measured writes, to see a transient.
//
//	go test ./transport/redis -run '^$' -bench LagStages -benchtime 150000x -args -lag.delay 20ms
//	go test ./transport/redis -run '^$' -bench LagStages -benchtime 168000x -v -args \
//		-lag.rate 56000 -lag.warm 50000 -lag.buckets 50
func BenchmarkLagStages(b *testing.B) {
	n, warmN := b.N, *lagWarm
	total := warmN + n                     // writes 0..warmN-1 warm up, at full speed
	written := make([]atomic.Int64, total) // unix ns of each write's Write call
	applied := make([]atomic.Int64, total) // of its apply in telecom
	var done atomic.Int64
	proc := dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error { // telecom's
		if len(r.Payload) >= 8 {
			if seq := binary.LittleEndian.Uint64(r.Payload); seq < uint64(total) && applied[seq].CompareAndSwap(0, time.Now().UnixNano()) {
				done.Add(1)
			}
		}
		return nil
	})
	ru, rt := testserver.StartRedis(b), testserver.StartRedis(b)
	line, err := netdelay.Start(netdelay.Config{Target: rt.Addr(), Delay: *lagDelay})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { line.Close() })
	cu, ct := goredis.NewClient(&goredis.Options{Addr: ru.Addr()}), goredis.NewClient(&goredis.Options{Addr: rt.Addr()})
	remote := goredis.NewClient(&goredis.Options{Addr: line.Addr()})
	b.Cleanup(func() { cu.Close(); ct.Close(); remote.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := func(dc string, own, peer goredis.UniversalClient, other string) NodeConfig {
		return NodeConfig{DC: dc, Client: own, Peers: map[string]goredis.UniversalClient{other: peer},
			TrimInterval: time.Hour, Logger: quiet} // untrimmed: the entries are read afterwards
	}
	nop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	u := start(b, "unicom", ru, cfg("unicom", cu, remote, "telecom"), nop)
	start(b, "telecom", rt, cfg("telecom", ct, cu, "unicom"), proc)

	// write writes from..to-1 with 64 writers, seq due at begin +
	// (seq-from)/rate, or at once when rate is 0.
	write := func(from, to int, rate float64, begin time.Time) {
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for seq := next.Add(1) - 1; seq < int64(to); seq = next.Add(1) - 1 {
					if rate > 0 {
						due := begin.Add(time.Duration(float64(seq-int64(from)) / rate * float64(time.Second)))
						if d := time.Until(due); d > 0 {
							time.Sleep(d)
						}
					}
					payload := make([]byte, 256)
					binary.LittleEndian.PutUint64(payload, uint64(seq))
					written[seq].Store(time.Now().UnixNano())
					req := &dcsync.Request{Key: fmt.Sprintf("k%d", seq%4096), Op: "set", Payload: payload}
					if err := u.sync.Write(context.Background(), req); err != nil {
						b.Errorf("write: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		eventually(b, 2*time.Minute, func() bool { return done.Load() == int64(to) },
			func() string { return fmt.Sprintf("%d of %d applied", done.Load(), to) })
	}
	if warmN > 0 {
		write(0, warmN, 0, time.Now())
		debug.FreeOSMemory() // as the benchmark command does before its phase
	}

	b.ResetTimer()
	begin := time.Now()
	write(warmN, total, *lagRate, begin)
	b.StopTimer()

	// When each write entered each stream, by its entry's ID.
	entered := func(c *goredis.Client, stream string) []int64 {
		at := make([]int64, total)
		msgs, err := c.XRange(context.Background(), stream, "-", "+").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			var ms int64
			fmt.Sscanf(m.ID, "%d-", &ms)
			frames, err := decodeFrames(m.Values)
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range frames {
				if f.req != nil && f.req.Origin == "unicom" && len(f.req.Payload) >= 8 {
					if seq := binary.LittleEndian.Uint64(f.req.Payload); seq < uint64(total) && at[seq] == 0 {
						at[seq] = ms * 1e6
					}
				}
			}
		}
		return at
	}
	out := entered(cu, Key("dcsync", "unicom", "outbound"))
	in := entered(ct, Key("dcsync", "telecom", "inbound:unicom"))
	ap := entered(ct, Key("dcsync", "telecom", "apply"))
	ms := func(from, to int64) float64 { return float64(to-from) / 1e6 }
	type hops struct{ lag, toOut, toIn, toApply, toProc []float64 }
	add := func(h *hops, seq int) {
		w, a := written[seq].Load(), applied[seq].Load()
		h.lag = append(h.lag, ms(w, a))
		h.toOut, h.toIn = append(h.toOut, ms(w, out[seq])), append(h.toIn, ms(out[seq], in[seq]))
		h.toApply, h.toProc = append(h.toApply, ms(in[seq], ap[seq])), append(h.toProc, ms(ap[seq], a))
	}
	if k := *lagSteps; k > 0 {
		// Each bucket's p50/max per hop, to see where a transient is.
		for i := range k {
			var h hops
			for seq := warmN + i*n/k; seq < warmN+(i+1)*n/k; seq++ {
				add(&h, seq)
			}
			line := fmt.Sprintf("bucket %2d (from %4.0f ms):", i, ms(begin.UnixNano(), written[warmN+i*n/k].Load()))
			for _, v := range [][]float64{h.lag, h.toOut, h.toIn, h.toApply, h.toProc} {
				slices.Sort(v)
				if len(v) > 0 {
					line += fmt.Sprintf(" %5.1f/%5.1f", v[len(v)/2], v[len(v)-1])
				}
			}
			b.Log(line)
		}
		b.Log("columns: lag, write-outbound, outbound-inbound, inbound-apply, apply-processor (p50/max ms)")
	}
	warm := begin.Add(500 * time.Millisecond).UnixNano()
	var lag []float64
	var h hops
	for seq := warmN; seq < total; seq++ {
		lag = append(lag, ms(written[seq].Load(), applied[seq].Load()))
		if written[seq].Load() >= warm {
			add(&h, seq)
		}
	}
	for _, m := range []struct {
		name string
		v    []float64
	}{{"lag", lag}, {"warm-lag", h.lag}, {"write-outbound", h.toOut}, {"outbound-inbound", h.toIn},
		{"inbound-apply", h.toApply}, {"apply-processor", h.toProc}} {
		slices.Sort(m.v)
		if len(m.v) == 0 {
			continue
		}
		b.ReportMetric(m.v[len(m.v)/2], m.name+"-p50-ms")
		b.ReportMetric(m.v[min(len(m.v)-1, len(m.v)*99/100)], m.name+"-p99-ms")
	}
}
