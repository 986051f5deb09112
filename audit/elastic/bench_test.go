package elastic_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// BenchmarkAppend measures audit records per second into Elasticsearch,
// from Append until Flush has made them searchable, and the CPU each record
// cost this process and the Elasticsearch node. One record in four is a
// process record carrying its request, as in a write between two
// datacenters.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l := newLog(b, esaudit.Config{})
	const batch = 1000
	recs := make([]dcsync.Record, batch)
	cpu := startCPU()
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		w := time.Now()
		for i := range recs {
			id := fmt.Sprintf("b%09d", n+i)
			recs[i] = dcsync.Record{ID: id, DC: "unicom", Origin: "unicom", Stage: dcsync.StageApply,
				Status: dcsync.StatusOK, Attempt: 1, Written: w, Time: w}
			if i%4 == 0 {
				recs[i].Stage = dcsync.StageProcess
				recs[i].Request = &dcsync.Request{ID: id, Origin: "unicom", Key: "user:1", Op: "set",
					Payload: make([]byte, 64), Version: 1}
			}
		}
		if err := l.Append(ctx, dcsync.PackRecords(recs[:min(batch, b.N-n)])); err != nil {
			b.Fatal(err)
		}
	}
	flush(b, l)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	cpu.report(b, b.N, "record")
}

// BenchmarkWrites measures writes per second from unicom to telecom over
// the memory transport, each applied in both, without an audit log, with
// the memory one (the cost of auditing in the core, for reference) and with
// the Elasticsearch one. The clock stops when every write is applied in
// telecom and every audit record has been handed to the log: queued, or
// spooled when the queue is full, which is what the write path waits for.
// The CPU figures go on until the log has made every record searchable, so
// they hold all the work of auditing, what came after the clock stopped
// (encoding, bulk requests, replaying the spool) included; records/s is the
// rate at which the records were stored, up to that point.
//
// CPU per write is the figure to compare on and off by: Elasticsearch's
// indexing runs on the same cores as the writers here, which it never does
// in production, and takes them from the writers while the clock runs. To
// compare wall-clock rates as in production, give the node and the benchmark
// cores of their own, both for off and on: taskset -a -cp 1 <node's pid>,
// then taskset -c 0 go test ....
func BenchmarkWrites(b *testing.B) {
	for _, bc := range []struct{ name, audit string }{
		{"audit=off", ""}, {"audit=memory", "memory"}, {"audit=elastic", "elastic"}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var l *esaudit.Log
			var audit dcsync.AuditLog
			switch bc.audit {
			case "memory":
				audit = memaudit.New(0)
			case "elastic":
				l = newLog(b, esaudit.Config{})
				audit = l
			}
			syncers := pair(b, audit)
			payload := make([]byte, 64)
			cpu := startCPU()
			b.ResetTimer()
			for i := range b.N {
				req := &dcsync.Request{Key: fmt.Sprint("user:", i%1000), Op: "set", Payload: payload}
				if err := syncers["unicom"].Write(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			for _, s := range syncers {
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			handed := b.Elapsed()
			if l != nil {
				flush(b, l)
				stored := time.Since(cpu.start)
				st := l.Stats()
				b.ReportMetric(float64(st.Appended)/stored.Seconds(), "records/s")
				b.ReportMetric(float64(st.Spooled)/float64(st.Appended)*100, "%spooled")
			}
			if st := syncers["telecom"].Stats(); st.Applied != uint64(b.N) {
				b.Fatalf("telecom applied %d of %d writes", st.Applied, b.N)
			}
			b.ReportMetric(float64(b.N)/handed.Seconds(), "writes/s")
			cpu.report(b, b.N, "write")
		})
	}
}

// cpuSpan measures the CPU time this process and the Elasticsearch node
// spend from its start.
type cpuSpan struct {
	start      time.Time
	self, node time.Duration
	pid        int // the node's; 0 when not found
}

func startCPU() *cpuSpan {
	c := &cpuSpan{start: time.Now(), pid: nodePID()}
	c.self, c.node = selfCPU(), procCPU(c.pid)
	return c
}

// report reports the CPU time per op (a write or a record) since the start,
// in microseconds.
func (c *cpuSpan) report(b *testing.B, n int, op string) {
	b.ReportMetric(float64((selfCPU()-c.self).Microseconds())/float64(n), "cpu-µs/"+op)
	if c.pid != 0 {
		b.ReportMetric(float64((procCPU(c.pid)-c.node).Microseconds())/float64(n), "es-cpu-µs/"+op)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nodePID returns the pid of the node of DCSYNC_ELASTIC_URL when
// scripts/elastic.sh started it (its files are in $DCSYNC_ELASTIC_RUN, or
// else /tmp/dcsync-elastic-PORT), or 0.
func nodePID() int {
	run := os.Getenv("DCSYNC_ELASTIC_RUN")
	if u, err := url.Parse(os.Getenv("DCSYNC_ELASTIC_URL")); run == "" && err == nil && u.Port() != "" {
		run = "/tmp/dcsync-elastic-" + u.Port()
	}
	b, err := os.ReadFile(filepath.Join(run, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// procCPU returns the user and system time of process pid, from
// /proc/PID/stat (fields 14 and 15, after the parenthesised command name),
// or 0.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid == 0 || err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks; USER_HZ is 100 on Linux
}

// fixedCheckpoint makes every pass of a reconciler read the same window.
type fixedCheckpoint time.Time

func (c fixedCheckpoint) Load(context.Context, string) (time.Time, error) { return time.Time(c), nil }
func (fixedCheckpoint) Save(context.Context, string, time.Time) error     { return nil }

// BenchmarkReconcilePass measures one reconciler pass over a window of 2000
// writes in an index that holds 1x that many writes of history besides, and
// in one that holds 10x: the cost of a pass should follow the window, not
// the history. The history shares the window's daily index, written
// earlier the same day. The passes alternate between the two indices, so
// that both see the same load on the machine, and the medians are
// reported; an op is one pass of each.
func BenchmarkReconcilePass(b *testing.B) {
	const window = 2000
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	from := day.Add(20 * time.Hour)
	to := from.Add(window * 100 * time.Millisecond)
	ctx := context.Background()
	var reconcilers []*dcsync.Reconciler
	for _, history := range []int{1, 10} {
		l := newLog(b, esaudit.Config{FlushActions: 5000})
		seed(b, l, history*window, day, 20*time.Hour/time.Duration(history*window), false)
		seed(b, l, window, from, 100*time.Millisecond, false)
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: "unicom",
			Peers: map[string]dcsync.Sender{"telecom": memtransport.NewNetwork(1).Sender("unicom", "telecom")},
			Audit: l, Checkpoints: fixedCheckpoint(from.Add(time.Nanosecond)), Overlap: time.Nanosecond,
			Grace: -1, Now: func() time.Time { return to }, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		reconcilers = append(reconcilers, r)
	}
	times := make([][]time.Duration, len(reconcilers))
	b.ResetTimer()
	for range b.N {
		for i, r := range reconcilers {
			start := time.Now()
			rep, err := r.RunOnce(ctx)
			times[i] = append(times[i], time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if rep.Scanned != window || rep.Complete != window {
				b.Fatalf("pass %+v, want %d writes scanned, all complete", rep, window)
			}
		}
	}
	b.StopTimer()
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	m1, m10 := median(times[0]), median(times[1])
	b.ReportMetric(float64(m1.Microseconds())/1000, "ms/pass-1x")
	b.ReportMetric(float64(m10.Microseconds())/1000, "ms/pass-10x")
	b.ReportMetric(float64(m10)/float64(m1), "ratio-10x/1x")
}

// BenchmarkSustained steps the write rate up — 5k, 10k, 20k, 40k, 80k and
// 160k writes/s between two datacenters in this process, memory transport,
// Elasticsearch audit log — each step for DCSYNC_SUSTAIN seconds (default
// 10; the figure is for 60), and reports the highest rate the log
// held: no record spooled during the step, and the step's last write
// searchable (Records, no Flush) within 5 s of its end. Elasticsearch's
// CPU per write is reported for that step. Run it with -benchtime 1x.
func BenchmarkSustained(b *testing.B) {
	step := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("DCSYNC_SUSTAIN")); err == nil && s > 0 {
		step = time.Duration(s) * time.Second
	}
	for b.Loop() {
		ctx := context.Background()
		l := newLog(b, esaudit.Config{})
		syncers := pair(b, l)
		payload := make([]byte, 256)
		held, esPerWrite := 0, 0.0
		for _, rate := range []int{5000, 10000, 20000, 40000, 80000, 160000} {
			spooled := l.Stats().Spooled
			cpu := startCPU()
			start := time.Now()
			n := int(float64(rate) * step.Seconds())
			var last string
			const writers = 16
			var wg sync.WaitGroup
			var behind atomic.Bool
			for w := range writers {
				wg.Go(func() {
					for i := w; i < n; i += writers {
						due := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
						if d := time.Until(due); d > time.Millisecond {
							time.Sleep(d)
						} else if d < -time.Second {
							behind.Store(true) // the writers cannot keep the rate
						}
						req := &dcsync.Request{Key: fmt.Sprint("user:", i%1000), Op: "set", Payload: payload}
						if err := syncers["unicom"].Write(ctx, req); err != nil {
							b.Error(err)
							return
						}
						if i == n-1 {
							last = req.ID
						}
					}
				})
			}
			wg.Wait()
			end := time.Now()
			_ = syncers["unicom"].Flush(ctx)
			found := false
			for time.Since(end) < 5*time.Second && !found {
				recs, err := l.Records(ctx, last)
				found = err == nil && len(recs) > 0
				if !found {
					time.Sleep(100 * time.Millisecond)
				}
			}
			grew := l.Stats().Spooled - spooled
			es := float64(procCPU(cpu.pid)-cpu.node) / float64(n) / 1e3
			b.Logf("%d writes/s for %v: searchable in 5s %v, spooled %d, writers behind %v, ES %.1f µs/write, dcsync %.1f µs/write",
				rate, step, found, grew, behind.Load(), es, float64(selfCPU()-cpu.self)/float64(n)/1e3)
			if !found || grew > 0 || behind.Load() {
				break
			}
			held, esPerWrite = rate, es
			flush(b, l) // start the next step from an empty pipeline
		}
		b.ReportMetric(float64(held), "sustained-writes/s")
		b.ReportMetric(esPerWrite, "es-cpu-µs/write")
	}
}

// pair returns two Syncers, unicom and telecom, joined by the memory
// transport, with no-op processors, logging to audit; closed when b ends.
func pair(b *testing.B, audit dcsync.AuditLog) map[string]*dcsync.Syncer {
	net := memtransport.NewNetwork(1)
	nop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	syncers := map[string]*dcsync.Syncer{}
	for _, dc := range []string{"unicom", "telecom"} {
		peer := map[string]string{"unicom": "telecom", "telecom": "unicom"}[dc]
		s, err := dcsync.New(dcsync.Config{DC: dc, Processor: nop, Audit: audit, Logger: quiet,
			Peers: map[string]dcsync.Sender{peer: net.Sender(dc, peer)}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		net.Attach(dc, s.Collector())
		syncers[dc] = s
	}
	return syncers
}
