package dcsync_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/metrics/prom"
	"github.com/dcsync/dcsync/monitor"
	"github.com/dcsync/dcsync/tracing"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// BenchmarkObserve measures the cost of observability on replication
// between two datacenters over the memory transport (Write, reship,
// collect, apply, audit): no Observer; the Monitor and Prometheus metrics;
// those and the Tracer under otel's no-op provider; and those with an SDK
// provider recording every span (sampled, exported nowhere).
func BenchmarkObserve(b *testing.B) {
	for _, v := range []struct {
		name string
		obs  func(dc, peer string) dcsync.Observer
	}{
		{"off", func(string, string) dcsync.Observer { return nil }},
		{"metrics", func(dc, peer string) dcsync.Observer { return withMetrics(dc, peer) }},
		{"metrics+noop-tracer", func(dc, peer string) dcsync.Observer {
			return dcsync.Observers(tracing.New(dc, tracing.Options{}), withMetrics(dc, peer))
		}},
		{"metrics+sdk-tracer", func(dc, peer string) dcsync.Observer {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
			return dcsync.Observers(tracing.New(dc, tracing.Options{Provider: tp}), withMetrics(dc, peer))
		}},
	} {
		b.Run(v.name, func(b *testing.B) { benchmarkObserve(b, v.obs) })
	}
}

func withMetrics(dc, peer string) dcsync.Observer {
	mon := monitor.New(dc, []string{peer})
	m := prom.New(mon, prom.Options{})
	prometheus.NewRegistry().MustRegister(m)
	return dcsync.Observers(mon, m)
}

func benchmarkObserve(b *testing.B, obs func(dc, peer string) dcsync.Observer) {
	network := memtransport.NewNetwork(1)
	audit := memaudit.New(0)
	var applied atomic.Int64
	counting := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { applied.Add(1); return nil })
	syncers := map[string]*dcsync.Syncer{}
	for dc, peer := range map[string]string{"unicom": "telecom", "telecom": "unicom"} {
		proc := noop
		if dc == "telecom" {
			proc = counting
		}
		s, err := dcsync.New(dcsync.Config{DC: dc, Processor: proc, Audit: audit, Observer: obs(dc, peer),
			Peers: map[string]dcsync.Sender{peer: network.Sender(dc, peer)}})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		network.Attach(dc, s.Collector())
		syncers[dc] = s
	}
	unicom, telecom := syncers["unicom"], syncers["telecom"]
	ctx, payload := context.Background(), make([]byte, 256)
	b.ReportAllocs()
	cpu := cpuTime(b)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := unicom.Write(ctx, &dcsync.Request{Key: "user:1", Op: "set", Payload: payload}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for _, s := range []*dcsync.Syncer{unicom, telecom} { // in the order writes flow
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if reportRates(b, cpu); applied.Load() != int64(b.N) {
		b.Fatalf("telecom applied %d of %d", applied.Load(), b.N)
	}
}
