package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync/internal/wait"
)

// Kinds of target.
const (
	kindDcsync  = "dcsync"
	kindPeer    = "peer"
	kindCeiling = "ceiling"
)

// target is one row of the table: something that carries writes from one
// datacenter to the other.
type target struct {
	name      string
	kind      string
	transport string
	audit     string
	// needs says why the target cannot run here, or "" when it can.
	needs func(cfg *Config) string
	// start builds the system on fresh servers for one phase.
	start func(ctx context.Context, e *env) (system, error)
}

// system is one running instance of a target: a writer or a driver.
type system interface {
	close() error
}

// writer is a system that carries writes: write enters one at the origin,
// and the peer's side calls env.apply with the payload when it applies it.
type writer interface {
	write(ctx context.Context, seq int, payload []byte) error
}

// driver is a system that produces a phase's writes itself (a ceiling): it
// does the work of n writes, counting them in done, and returns once the
// receiving side has all of them. A rate above zero is the system's own
// measure of writes/s, which then replaces the phase's wall-clock one.
type driver interface {
	drive(ctx context.Context, n int, done *atomic.Int64) (rate float64, err error)
}

// flusher is a system whose side work (the audit log) may still be under
// way once the peer has applied every write: flush waits for it.
type flusher interface {
	flush(ctx context.Context) error
}

// process is a server process that a phase's figures account for.
type process struct {
	name string
	pid  int
	// wire, when set, returns the bytes the server itself counted on its
	// connections (Redis INFO); otherwise the clients' connections are
	// counted.
	wire func() int64
	// rewrites, when set, counts the append-only file rewrites of a
	// redis-server.
	rewrites func() int64
	// shared means other programs use the process too: its CPU is
	// reported, but its memory is not its own to this phase.
	shared bool
}

// env is what a phase gives the system it starts, and what it collects
// from it.
type env struct {
	cfg       *Config
	apply     func(payload []byte) // the peer's processor calls it
	wire      *wireCounter         // replication traffic
	auditWire *wireCounter         // audit log traffic
	link      *link                // the WAN between the datacenters; nil on loopback

	elasticOnce sync.Once // adds the Elasticsearch process to procs

	mu      sync.Mutex
	procs   []process
	cleanup []func()
	notes   []string // what the figures leave out
}

// addProcess accounts for p in the phase's figures.
func (e *env) addProcess(p process) {
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
}

// note records what the phase's figures leave out.
func (e *env) note(s string) {
	e.mu.Lock()
	e.notes = append(e.notes, s)
	e.mu.Unlock()
}

// onClose runs f when the phase ends, after the system has closed, in
// reverse order of registration.
func (e *env) onClose(f func()) {
	e.mu.Lock()
	e.cleanup = append(e.cleanup, f)
	e.mu.Unlock()
}

func (e *env) close() {
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
}

// serverUsage is what the phase's server processes have used so far.
type serverUsage struct {
	cpu      time.Duration
	byName   map[string]time.Duration // CPU by process name
	wire     int64
	rewrites int64 // Redis append-only file rewrites
}

func (e *env) serverUsage() serverUsage {
	u := serverUsage{byName: map[string]time.Duration{}}
	for _, p := range e.procs {
		cpu := cpuOf(p.pid)
		u.cpu += cpu
		u.byName[p.name] += cpu
		if p.wire != nil {
			u.wire += p.wire()
		}
		if p.rewrites != nil {
			u.rewrites += p.rewrites()
		}
	}
	return u
}

// runTarget runs both phases of t.
func runTarget(ctx context.Context, cfg *Config, t target) Result {
	r := Result{Name: t.name, Kind: t.kind, Transport: t.transport, Audit: t.audit}
	if why := t.needs(cfg); why != "" {
		r.Skipped = why
		return r
	}
	r.Full = runPhase(ctx, cfg, t, 0)
	if t.kind == kindCeiling || r.Full.Error != "" {
		return r
	}
	if cfg.Rate > 0 {
		r.Rate = runPhase(ctx, cfg, t, float64(cfg.Rate))
	}
	if cfg.Load > 0 {
		r.Loaded = runPhase(ctx, cfg, t, cfg.Load*r.Full.sustained())
	}
	if t.audit == elasticStore.name && cfg.SustainFor > 0 {
		r.Sustained, r.SustainedRate = sustain(ctx, cfg, t)
	}
	return r
}

// sustain steps t's offered rate up, doubling from 5000 writes/s, each
// step SustainFor long on fresh servers, until a step does not hold: the
// peer applied every write within 5 s of the step's end, and the audit log
// stored every record (nothing left in the spool) within 5 s of the last
// apply. It returns the steps and the highest rate that held.
func sustain(ctx context.Context, cfg *Config, t target) ([]*Phase, float64) {
	c := *cfg
	c.RateFor = cfg.SustainFor
	var steps []*Phase
	held := 0.0
	for rate := 5000.0; rate <= 640000 && ctx.Err() == nil; rate *= 2 {
		ph := runPhase(ctx, &c, t, rate)
		steps = append(steps, ph)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s sustained %.0f writes/s: %.1f s to apply, %.1f s to audit %s\n",
				t.name, rate, ph.Seconds, ph.AuditDone, ph.Error)
		}
		if ph.Error != "" || ph.Applied < int64(ph.Writes) || ph.Seconds > c.RateFor.Seconds()+5 ||
			ph.AuditDone > ph.Seconds+5 {
			break
		}
		held = rate
	}
	return steps, held
}

// sustained returns the writes/s a full-speed phase could keep up: its
// writes/s, or, when its audit log stored the records later, the rate at
// which it stored them — a burst ahead of the log fills its queue and
// spool, which a longer phase would not outrun.
func (ph *Phase) sustained() float64 {
	if ph.AuditDone > 0 {
		return min(ph.WritesPerSec, float64(ph.Writes)/ph.AuditDone)
	}
	return ph.WritesPerSec
}

// runPhase starts t on fresh servers, warms it up, has it carry the
// phase's writes at full speed (rate 0) or at rate writes/s, and measures.
func runPhase(ctx context.Context, cfg *Config, t target, rate float64) *Phase {
	fixedRate := rate > 0
	n := cfg.N
	switch {
	case t.audit == elasticStore.name:
		n = cfg.ElasticN
	case t.kind == kindCeiling:
		n = cfg.CeilingN
	}
	if fixedRate {
		n = max(int(rate*cfg.RateFor.Seconds()), 1)
	}
	var cur atomic.Pointer[tracker] // of the warm-up, then of the phase
	e := &env{cfg: cfg, apply: func(p []byte) { cur.Load().apply(p) }, wire: &wireCounter{}, auditWire: &wireCounter{}}
	defer e.close()
	ph := &Phase{Writes: n}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	sys, err := t.start(ctx, e)
	if err != nil {
		ph.Error = fmt.Sprintf("start: %v", err)
		return ph
	}
	closed := false
	closeSys := func() {
		if !closed {
			closed = true
			if err := sys.close(); err != nil && ph.Error == "" {
				ph.Error = fmt.Sprintf("close: %v", err)
			}
		}
	}
	defer closeSys()

	// A tenth of the writes, at most 10000, at full speed first: connections,
	// consumer groups, JIT and heap settle before anything is measured.
	warm := min(n/10, 10000)
	if e.link != nil { // across a WAN the window grows for a few round trips first
		warm = max(warm, min(n/2, 50000))
	}
	if warm > 0 {
		wt := newTracker(warm)
		cur.Store(wt)
		if _, _, err := carry(ctx, cfg, sys, wt, 0, time.Now(), new(atomic.Int64)); err != nil {
			ph.Error = fmt.Sprintf("warm-up: %v", err)
			return ph
		}
	}
	tr := newTracker(n)
	cur.Store(tr)

	debug.FreeOSMemory() // so that this phase's peaks are its own
	rssReset := resetPeakRSS()
	heap := newHeapSys()
	var peak peaks
	peak.sample(heap)
	stopProfile := func() {}
	if cfg.ProfileDir != "" && !fixedRate {
		if stopProfile, err = startProfile(cfg.ProfileDir, t.name); err != nil {
			ph.Error = err.Error()
			return ph
		}
	}
	self0, children0 := cpuSelf()
	srv0 := e.serverUsage()
	wire0, auditWire0 := e.wire.bytes(), e.auditWire.bytes()
	begin := time.Now()

	var written atomic.Int64
	stopProgress := progress(cfg, t.name, rate, n, &written, &tr.applied, heap, &peak)
	ownRate, audited, err := carry(ctx, cfg, sys, tr, rate, begin, &written)
	end := time.Unix(0, tr.lastApply.Load())
	if err != nil {
		end = time.Now()
	}
	if !audited.IsZero() {
		ph.AuditDone = audited.Sub(begin).Seconds()
	}
	stopProgress()
	stopProfile()
	if cfg.HeapDir != "" && !fixedRate {
		if err := writeHeapProfile(cfg.HeapDir, t.name); err != nil {
			e.note(err.Error())
		}
	}
	peak.sample(heap)
	self1, children1 := cpuSelf()
	srv1 := e.serverUsage()

	ph.Applied = tr.applied.Load()
	ph.Duplicates = tr.dups.Load()
	ph.Seconds = end.Sub(begin).Seconds()
	ph.WritesPerSec = float64(ph.Applied) / ph.Seconds
	if ownRate > 0 {
		ph.WritesPerSec = ownRate
	}
	ph.OfferedRate = rate
	procCPU := (self1 - self0) + (children1 - children0)
	srvCPU := srv1.cpu - srv0.cpu
	ph.CPUProcess = procCPU.Seconds()
	ph.CPUServers = srvCPU.Seconds()
	for name, cpu := range srv1.byName {
		if ph.CPUByServer == nil {
			ph.CPUByServer = map[string]float64{}
		}
		ph.CPUByServer[name] = (cpu - srv0.byName[name]).Seconds()
	}
	ph.CPUPerMillion = (procCPU + srvCPU).Seconds() * 1e6 / float64(n)
	ph.WireBytesPerWrite = float64(e.wire.bytes()-wire0+srv1.wire-srv0.wire) / float64(n)
	ph.AOFRewrites = srv1.rewrites - srv0.rewrites
	ph.AuditWireBytesPerWrite = float64(e.auditWire.bytes()-auditWire0) / float64(n)
	ph.PeakHeapSys = peak.heap
	ph.PeakRSS = peak.rss
	if rssReset {
		ph.PeakRSS = max(ph.PeakRSS, procStatus(0, "VmHWM"))
	}
	ph.ServerPeakRSS = serverPeakRSS(e)
	ph.Notes = e.notes
	if err != nil {
		ph.Error = err.Error()
	}
	if _, ok := sys.(writer); ok {
		closeSys() // no apply may race the lag read
		lat := tr.latency()
		ph.Lag = &lat
	}
	return ph
}

// carry has sys carry the writes tr tracks, at full speed (rate 0) or at
// rate writes/s from begin, and waits until the peer has applied them all and, for
// a flusher, until their audit records are stored: the work of a write
// includes them, so CPU, wire and memory are measured until then. It
// returns a driver's own writes/s, and when the audit records were stored
// (zero for a system without).
func carry(ctx context.Context, cfg *Config, sys system, tr *tracker, rate float64, begin time.Time,
	written *atomic.Int64) (ownRate float64, audited time.Time, err error) {
	switch sys := sys.(type) {
	case driver:
		if ownRate, err = sys.drive(ctx, tr.n, written); err != nil {
			return 0, audited, err
		}
		tr.lastApply.Store(time.Now().UnixNano())
		tr.applied.Store(int64(tr.n))
		return ownRate, audited, nil
	case writer:
		if err := writeAll(ctx, sys, tr, cfg, rate, begin, written); err != nil {
			return 0, audited, err
		}
	default:
		return 0, audited, fmt.Errorf("%T neither writes nor drives", sys)
	}
	select {
	case <-tr.done:
	case <-ctx.Done():
		return 0, audited, fmt.Errorf("peer applied %d of %d writes when the phase ended: %w",
			tr.applied.Load(), tr.n, context.Cause(ctx))
	}
	if f, ok := sys.(flusher); ok {
		if err := f.flush(ctx); err != nil {
			return 0, audited, fmt.Errorf("flushing the audit logs: %w", err)
		}
		audited = time.Now()
	}
	return 0, audited, nil
}

// paceSlack is how early a paced writer may write: it sleeps only for
// writes due later than that, so the writers wake once per bunch of writes,
// not once per write, and their timers do not eat the CPU of the system
// they measure. Lag counts from the moment each write is made.
const paceSlack = time.Millisecond

// writeAll enters tr's writes with cfg.Writers concurrent writers: as fast as
// they go (rate 0), or at rate writes/s from begin (write seq is due at
// begin + seq/rate; a writer running late writes at once, so a system
// that cannot keep up shows as a lower achieved rate).
func writeAll(ctx context.Context, sys writer, tr *tracker, cfg *Config, rate float64,
	begin time.Time, written *atomic.Int64) error {
	n := tr.n
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range min(cfg.Writers, n) {
		wg.Go(func() {
			for seq := int(next.Add(1) - 1); seq < n && ctx.Err() == nil; seq = int(next.Add(1) - 1) {
				if rate > 0 {
					due := begin.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
					if d := time.Until(due); d > paceSlack && !wait.Sleep(ctx, d) {
						return
					}
				}
				if err := sys.write(ctx, seq, tr.payload(seq, cfg.Payload)); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("write %d: %w", seq, err); cancel() })
					return
				}
				written.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// peaks are the largest memory figures sampled during a phase.
type peaks struct {
	mu   sync.Mutex
	heap int64
	rss  int64
}

func (p *peaks) sample(h *heapSys) {
	heap, rss := h.read(), procStatus(0, "VmRSS")
	p.mu.Lock()
	p.heap, p.rss = max(p.heap, heap), max(p.rss, rss)
	p.mu.Unlock()
}

// serverPeakRSS sums the peak resident memory of the phase's own server
// processes (fresh for the phase, so their peak is the phase's).
func serverPeakRSS(e *env) int64 {
	var n int64
	for _, p := range e.procs {
		if !p.shared {
			n += procStatus(p.pid, "VmHWM")
		}
	}
	return n
}

// progress samples memory every 100ms and, when cfg.Progress is set,
// rewrites a one-line status there every 250ms, until the returned
// function is called.
func progress(cfg *Config, name string, rate float64, n int, written, applied *atomic.Int64,
	heap *heapSys, peak *peaks) (stop func()) {
	phase := "full"
	if rate > 0 {
		phase = fmt.Sprintf("%.0f/s", rate)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	begin := time.Now()
	line := func() {
		if cfg.Progress == nil {
			return
		}
		el := time.Since(begin).Seconds()
		fmt.Fprintf(cfg.Progress, "\r%-24s %-7s written %8d  applied %8d/%d  %9.0f writes/s  %5.1fs ",
			name, phase, written.Load(), applied.Load(), n, float64(applied.Load())/el, el)
	}
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-done:
				if cfg.Progress != nil {
					fmt.Fprint(cfg.Progress, "\r"+strings.Repeat(" ", 110)+"\r")
				}
				return
			case <-tick.C:
				peak.sample(heap)
				if i%3 == 0 {
					line()
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// profilePath names the profile of target name in dir.
func profilePath(dir, name string) string {
	return filepath.Join(dir, strings.NewReplacer("/", "_", "+", "_").Replace(name)+".pprof")
}

// writeHeapProfile writes a heap profile, of what is live now and of what
// the phase allocated, in dir.
func writeHeapProfile(dir, name string) error {
	f, err := os.Create(profilePath(dir, name))
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
}

// startProfile starts a CPU profile of the phase in dir, named after the
// target.
func startProfile(dir, name string) (stop func(), err error) {
	f, err := os.Create(profilePath(dir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, errors.Join(errors.New("cpu profile"), err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
