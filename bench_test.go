package dcsync_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

var noop = dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports writes per second of wall time and CPU microseconds
// per write: the second holds still when other processes load the machine.
func reportRates(b *testing.B, cpuStart time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(cpuTime(b)-cpuStart)/float64(b.N)/1e3, "cpu-µs/write")
}

type discard struct{}

func (discard) Send(context.Context, []*dcsync.Request) error { return nil }
func (discard) Close() error                                  { return nil }

// BenchmarkWrite measures Write alone: ID, version, a no-op processor, the
// memory audit log, and the hand-off to one peer's queue (drained by a
// sender that discards).
func BenchmarkWrite(b *testing.B) {
	s, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: noop, Audit: memaudit.New(0),
		Peers: map[string]dcsync.Sender{"telecom": discard{}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 256)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		if err := s.Write(ctx, &dcsync.Request{Key: "user:1", Op: "set", Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil { // the audit log's work counts too
		b.Fatal(err)
	}
	reportRates(b, cpu)
}

// BenchmarkReplicate measures end-to-end replication between two
// datacenters over the memory transport: a write in unicom until telecom
// has applied it, with both audit records and dedupe on the way, from one
// writer and from 64 concurrent ones, as a busy service has.
func BenchmarkReplicate(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchmarkReplicate(b, writers) })
	}
}

func benchmarkReplicate(b *testing.B, writers int) {
	network := memtransport.NewNetwork(1)
	audit := memaudit.New(0)
	var applied atomic.Int64
	counting := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { applied.Add(1); return nil })
	unicom, err := dcsync.New(dcsync.Config{DC: "unicom", Processor: noop, Audit: audit,
		Peers: map[string]dcsync.Sender{"telecom": network.Sender("unicom", "telecom")}})
	if err != nil {
		b.Fatal(err)
	}
	telecom, err := dcsync.New(dcsync.Config{DC: "telecom", Processor: counting, Audit: audit,
		Peers: map[string]dcsync.Sender{"unicom": network.Sender("telecom", "unicom")}})
	if err != nil {
		b.Fatal(err)
	}
	network.Attach("telecom", telecom.Collector())
	defer telecom.Close()
	defer unicom.Close()
	payload := make([]byte, 256)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime(b)
	write := func() bool {
		err := unicom.Write(ctx, &dcsync.Request{Key: "user:1", Op: "set", Payload: payload})
		if err != nil {
			b.Error(err)
		}
		return err == nil
	}
	if writers == 1 {
		for b.Loop() && write() {
		}
	} else {
		b.SetParallelism(writers / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() && write() {
			}
		})
	}
	if err := unicom.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := telecom.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	reportRates(b, cpu)
	if got := applied.Load(); got != int64(b.N) {
		b.Fatalf("telecom applied %d of %d", got, b.N)
	}
}

// BenchmarkReconcileReplicatedWindow measures a reconciler pass over a
// window of 1M writes, all applied by the peer, with one memory audit log
// per datacenter, filled as the stages would fill them (entries of 256
// writes). A pass compares digests: it re-sends nothing and reads no trail.
func BenchmarkReconcileReplicatedWindow(b *testing.B) {
	const writes, batch = 1 << 20, 256
	ctx := context.Background()
	own, peer := memaudit.New(4*writes), memaudit.New(4*writes)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := 0; i < writes; i += batch {
		process := dcsync.Entry{DC: "unicom", Origin: "unicom", Stage: dcsync.StageProcess, Status: dcsync.StatusOK, Attempt: 1}
		for k := i; k < i+batch; k++ {
			w := start.Add(time.Duration(k) * 25 * time.Microsecond) // 40k writes/s
			id := fmt.Sprintf("%016x-%d", w.UnixNano(), k)
			process.IDs, process.Written = append(process.IDs, id), append(process.Written, w)
			process.Requests = append(process.Requests, &dcsync.Request{ID: id, Origin: "unicom", Key: "k", Payload: make([]byte, 16)})
		}
		process.Time = process.Written[0]
		apply := process
		apply.DC, apply.Stage, apply.Requests = "telecom", dcsync.StageApply, nil
		reship := apply
		reship.DC, reship.Stage, reship.Target = "unicom", dcsync.StageReship, "telecom"
		if err := own.Append(ctx, []dcsync.Entry{process, reship}); err != nil {
			b.Fatal(err)
		}
		if err := peer.Append(ctx, []dcsync.Entry{apply}); err != nil {
			b.Fatal(err)
		}
	}
	end := start.Add(writes * 25 * time.Microsecond).Add(time.Second)
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom",
			Peers: map[string]dcsync.Sender{"telecom": discard{}}, Audit: own,
			PeerAudit: map[string]dcsync.AuditLog{"telecom": peer},
			Lookback:  time.Since(start) + time.Second, Grace: time.Since(end) - time.Second})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := r.RunOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Scanned != writes || rep.Complete != writes || rep.Sent != 0 {
			b.Fatalf("report %+v", rep)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e9, "cpu-s/pass")
}

// BenchmarkMemoryDedupe measures a claim and a commit of a new ID in a
// MemoryDedupe that remembers 4M IDs already (its default bound), from
// two goroutines, as two lanes of collectors claim: one ID at a time
// (batch=1), and as the Collector does, a batch of 256 at a time
// (ClaimBatch and CommitBatch).
func BenchmarkMemoryDedupe(b *testing.B) {
	ctx := context.Background()
	var d dcsync.MemoryDedupe
	id := func(i int) string { return fmt.Sprintf("0190a3b4-7c2e-7000-8000-%012d", i) }
	for i := range dcsync.DefaultDedupeEntries {
		d.Claim(ctx, id(i))
		d.Commit(ctx, id(i))
	}
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = id(dcsync.DefaultDedupeEntries + i)
	}
	var next atomic.Int64
	for _, batch := range []int{1, 256} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			cpu := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				claims := make([]dcsync.Claim, batch)
				for pb.Next() {
					start := int(next.Add(int64(batch))) % (len(ids) - batch)
					if batch == 1 {
						if c, _ := d.Claim(ctx, ids[start]); c == dcsync.Claimed {
							d.Commit(ctx, ids[start])
						}
						continue
					}
					d.ClaimBatch(ctx, ids[start:start+batch], claims)
					d.CommitBatch(ctx, ids[start:start+batch])
				}
			})
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*batch), "cpu-ns/claim")
		})
	}
}
