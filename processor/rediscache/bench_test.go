package rediscache_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// The benchmarks write 100-byte values over 1024 keys with ever greater
// versions, so every write is applied, and compare the Cache with plain
// SET and HSET of the same data on the same server in the same run: the
// difference is the cost of the version check. One op is one write; the
// writes/s metric is the same figure as a rate.
const (
	benchKeys  = 1024
	benchBatch = 256
)

var benchValue = make([]byte, 100)

// benchWriter writes write number i, alone or into a pipeline.
type benchWriter struct {
	name  string
	write func(ctx context.Context, c redis.Cmdable, i uint64) error
	batch func(ctx context.Context, first uint64, n int) error // nil: pipeline write
}

func benchWriters(cache *rediscache.Cache, client *redis.Client) []benchWriter {
	version := uint64(time.Now().UnixMilli()) << 16
	req := func(i uint64) *dcsync.Request {
		return &dcsync.Request{ID: "bench", Origin: "unicom", Key: benchKey(i), Op: rediscache.OpSet,
			Version: version + i, Payload: benchValue}
	}
	return []benchWriter{
		{name: "rediscache",
			write: func(ctx context.Context, _ redis.Cmdable, i uint64) error { return cache.Process(ctx, req(i)) },
			batch: func(ctx context.Context, first uint64, n int) error {
				reqs := make([]*dcsync.Request, n)
				for j := range reqs {
					reqs[j] = req(first + uint64(j))
				}
				return cache.ProcessBatch(ctx, reqs)
			}},
		{name: "SET", write: func(ctx context.Context, c redis.Cmdable, i uint64) error {
			return c.Set(ctx, "set:"+benchKey(i), benchValue, 0).Err()
		}},
		{name: "HSET", write: func(ctx context.Context, c redis.Cmdable, i uint64) error {
			return c.HSet(ctx, "hset:"+benchKey(i), "v", benchValue, "ver", strconv.FormatUint(version+i, 10),
				"origin", "unicom", "id", "bench").Err()
		}},
	}
}

func benchKey(i uint64) string { return "user:" + strconv.FormatUint(i%benchKeys, 10) }

// benchEach runs bench as a sub-benchmark of b for each writer, on one
// redis-server, and reports each one's rate.
func benchEach(b *testing.B, bench func(b *testing.B, ctx context.Context, client *redis.Client, w benchWriter)) {
	cache, client := startCache(b, rediscache.Options{})
	ctx := context.Background()
	for _, w := range benchWriters(cache, client) {
		b.Run(w.name, func(b *testing.B) {
			bench(b, ctx, client, w)
			reportRate(b)
		})
	}
}

// BenchmarkWrite writes one write per round trip, from one goroutine.
func BenchmarkWrite(b *testing.B) {
	benchEach(b, func(b *testing.B, ctx context.Context, client *redis.Client, w benchWriter) {
		var i uint64
		for b.Loop() {
			i++
			if err := w.write(ctx, client, i); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteParallel writes one write per round trip from GOMAXPROCS
// goroutines at once, over the client's connection pool.
func BenchmarkWriteParallel(b *testing.B) {
	benchEach(b, func(b *testing.B, ctx context.Context, client *redis.Client, w benchWriter) {
		var n atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.write(ctx, client, n.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkWriteBatch writes batches of 256 writes, one pipeline each:
// ProcessBatch for the Cache, pipelined commands for the plain writes.
func BenchmarkWriteBatch(b *testing.B) {
	benchEach(b, func(b *testing.B, ctx context.Context, client *redis.Client, w benchWriter) {
		for i := 0; i < b.N; i += benchBatch {
			n := min(benchBatch, b.N-i)
			if err := writeBatch(ctx, client, w, uint64(i), n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func writeBatch(ctx context.Context, client *redis.Client, w benchWriter, first uint64, n int) error {
	if w.batch != nil {
		return w.batch(ctx, first, n)
	}
	_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j := range n {
			if err := w.write(ctx, p, first+uint64(j)); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "writes/s")
	}
}
