package redis

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
// and groups being set up.
//
//	go test -run '^$' -bench LagStages -benchtime 150000x -lag.delay 20ms ./transport/redis
func BenchmarkLagStages(b *testing.B) {
	n := b.N
	written := make([]atomic.Int64, n) // unix ns of each write's Write call
	applied := make([]atomic.Int64, n) // of its apply in telecom
	var done atomic.Int64
	proc := dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error { // telecom's
		if len(r.Payload) >= 8 {
			if seq := binary.LittleEndian.Uint64(r.Payload); seq < uint64(n) && applied[seq].CompareAndSwap(0, time.Now().UnixNano()) {
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

	b.ResetTimer()
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for seq := next.Add(1) - 1; seq < int64(n); seq = next.Add(1) - 1 {
				due := begin.Add(time.Duration(float64(seq) / *lagRate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
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
	eventually(b, 2*time.Minute, func() bool { return done.Load() == int64(n) },
		func() string { return fmt.Sprintf("%d of %d applied", done.Load(), n) })
	b.StopTimer()

	// When each write entered each stream, by its entry's ID.
	entered := func(c *goredis.Client, stream string) []int64 {
		at := make([]int64, n)
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
					if seq := binary.LittleEndian.Uint64(f.req.Payload); seq < uint64(n) && at[seq] == 0 {
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
	warm := begin.Add(500 * time.Millisecond).UnixNano()
	var lag, warmLag, toOut, toIn, toApply, toProc []float64
	for seq := range n {
		w, a := written[seq].Load(), applied[seq].Load()
		ms := func(from, to int64) float64 { return float64(to-from) / 1e6 }
		lag = append(lag, ms(w, a))
		if w >= warm {
			warmLag = append(warmLag, ms(w, a))
			toOut, toIn = append(toOut, ms(w, out[seq])), append(toIn, ms(out[seq], in[seq]))
			toApply, toProc = append(toApply, ms(in[seq], ap[seq])), append(toProc, ms(ap[seq], a))
		}
	}
	for _, m := range []struct {
		name string
		v    []float64
	}{{"lag", lag}, {"warm-lag", warmLag}, {"write-outbound", toOut}, {"outbound-inbound", toIn},
		{"inbound-apply", toApply}, {"apply-processor", toProc}} {
		slices.Sort(m.v)
		if len(m.v) == 0 {
			continue
		}
		b.ReportMetric(m.v[len(m.v)/2], m.name+"-p50-ms")
		b.ReportMetric(m.v[min(len(m.v)-1, len(m.v)*99/100)], m.name+"-p99-ms")
	}
}
