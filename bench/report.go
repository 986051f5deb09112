package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is everything one run measured; it is the -json file.
type Report struct {
	Started time.Time `json:"started"`
	Machine Machine   `json:"machine"`
	Config  struct {
		N          int     `json:"n"`
		ElasticN   int     `json:"elastic_n,omitempty"`
		CeilingN   int     `json:"ceiling_n"`
		Payload    int     `json:"payload_bytes"`
		Writers    int     `json:"writers"`
		Rate       int     `json:"rate_writes_per_s"`
		RateFor    float64 `json:"rate_phase_s"`
		Load       float64 `json:"load_fraction,omitempty"`
		SustainFor float64 `json:"sustain_step_s,omitempty"`
		BatchSize  int     `json:"dcsync_batch_size,omitempty"`
		Workers    int     `json:"dcsync_workers,omitempty"`
		Consumers  int     `json:"watermill_consumers_per_hop"`
		ElasticURL string  `json:"elastic_url,omitempty"`
	} `json:"config"`
	Results []Result `json:"results"`
	Ratios  []Ratio  `json:"ratios"`
	WAN     []WANRow `json:"wan,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	Go          string `json:"go"`
	LoadAtStart string `json:"load_average_start"`
	LoadAtEnd   string `json:"load_average_end"`
}

// Result is one target's row.
type Result struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // dcsync, peer, ceiling
	Transport string `json:"transport"`
	Audit     string `json:"audit,omitempty"`
	Skipped   string `json:"skipped,omitempty"` // why it did not run
	Full      *Phase `json:"full,omitempty"`    // at full speed
	Rate      *Phase `json:"rate,omitempty"`    // at the fixed offered rate
	Loaded    *Phase `json:"loaded,omitempty"`  // at Load times the full speed
	// Sustained are the steps of the +elastic rows' sustained phase, and
	// SustainedRate the highest offered rate that held.
	Sustained     []*Phase `json:"sustained,omitempty"`
	SustainedRate float64  `json:"sustained_writes_per_s,omitempty"`
}

// Phase is what one phase of a target measured.
type Phase struct {
	Writes       int      `json:"writes"`
	Applied      int64    `json:"applied"`    // distinct writes the peer applied
	Duplicates   int64    `json:"duplicates"` // applies of writes already applied
	Seconds      float64  `json:"seconds"`    // first write to last apply
	WritesPerSec float64  `json:"writes_per_s"`
	OfferedRate  float64  `json:"offered_writes_per_s,omitempty"`
	AuditDone    float64  `json:"audit_done_s,omitempty"` // first write to every audit record stored
	Lag          *latency `json:"lag,omitempty"`          // write to peer apply
	// CPU seconds of this process (writers, both datacenters, clients) and
	// of the phase's server processes, and their sum per million writes.
	CPUProcess    float64            `json:"cpu_process_s"`
	CPUServers    float64            `json:"cpu_servers_s"`
	CPUByServer   map[string]float64 `json:"cpu_by_server_s,omitempty"`
	CPUPerMillion float64            `json:"cpu_s_per_million_writes"`
	PeakRSS       int64              `json:"peak_rss_bytes"`
	PeakHeapSys   int64              `json:"peak_heap_sys_bytes"` // HeapSys − HeapReleased
	ServerPeakRSS int64              `json:"server_peak_rss_bytes"`
	// TCP payload bytes, both directions, per write: between the
	// datacenters and to their brokers, and to the audit store.
	WireBytesPerWrite      float64 `json:"wire_bytes_per_write"`
	AuditWireBytesPerWrite float64 `json:"audit_wire_bytes_per_write"`
	// AOFRewrites counts the append-only file rewrites the phase's Redis
	// servers began (or were in) while it ran: each forks the server.
	AOFRewrites int64    `json:"aof_rewrites,omitempty"`
	Notes       []string `json:"notes,omitempty"` // what the figures leave out
	Error       string   `json:"error,omitempty"`
}

// Ratio compares two rows' full-speed writes/s, and their CPU per write,
// which holds better than wall-clock rates on a loaded machine.
type Ratio struct {
	Name   string  `json:"name"`
	Of     string  `json:"of"`
	To     string  `json:"to"`
	Value  float64 `json:"value"`            // writes/s of Of / writes/s of To
	Target float64 `json:"target,omitempty"` // the value to reach, when there is one
	Met    *bool   `json:"met,omitempty"`
	// CPU is To's CPU per write / Of's: above 1, Of needs less.
	CPU float64 `json:"cpu_per_write_to_over_of"`
}

func newReport(cfg *Config) *Report {
	r := &Report{Started: time.Now().UTC(), Machine: Machine{CPU: cpuModel(), Cores: runtime.NumCPU(),
		Go: runtime.Version(), LoadAtStart: loadAverage()}}
	c := &r.Config
	c.N, c.Payload, c.Writers, c.Rate, c.RateFor = cfg.N, cfg.Payload, cfg.Writers, cfg.Rate, cfg.RateFor.Seconds()
	c.CeilingN = cfg.CeilingN
	if cfg.Load > 0 {
		c.Load = cfg.Load
	}
	if cfg.ElasticURL != "" {
		c.ElasticN = cfg.ElasticN
		if cfg.SustainFor > 0 {
			c.SustainFor = cfg.SustainFor.Seconds()
		}
	}
	c.BatchSize, c.Workers, c.Consumers, c.ElasticURL = cfg.BatchSize, cfg.Workers, cfg.WatermillConsumers, cfg.ElasticURL
	return r
}

// ratios lists the comparisons the targets are judged by: of, to, and
// the target value (0 for none).
var ratios = []struct {
	name, of, to string
	target       float64
}{
	{"dcsync over Redis Streams vs the Watermill forwarder", "dcsync/redis", "watermill/redis", 3},
	{"dcsync over HTTP vs its net/http ceiling", "dcsync/http", "ceiling/nethttp", 0.5},
	{"dcsync over gRPC vs its gRPC ceiling", "dcsync/grpc", "ceiling/grpc", 0.5},
	{"dcsync over HTTP vs one POST per write", "dcsync/http", "handrolled/http-post", 0},
	{"dcsync over gRPC vs one POST per write", "dcsync/grpc", "handrolled/http-post", 0},
	{"dcsync over Redis Streams vs pipelined XADD (redis-benchmark)", "dcsync/redis", "ceiling/redis-xadd", 0},
	{"Watermill forwarder vs pipelined XADD (redis-benchmark)", "watermill/redis", "ceiling/redis-xadd", 0},
	{"dcsync in memory vs over HTTP", "dcsync/memory", "dcsync/http", 0},
	{"dcsync in memory, 3 datacenters vs 2", "dcsync/memory-3dc", "dcsync/memory", 0},
	{"dcsync over Redis Cluster (Replicas 1) vs over one Redis a datacenter", "dcsync/redis-cluster", "dcsync/redis", 0},
}

func (r *Report) finish() {
	r.Machine.LoadAtEnd = loadAverage()
	full := func(name string) *Phase {
		for _, res := range r.Results {
			if res.Name == name && res.Full != nil && res.Full.Error == "" && res.Full.WritesPerSec > 0 {
				return res.Full
			}
		}
		return nil
	}
	for _, q := range ratios {
		of, to := full(q.of), full(q.to)
		if of == nil || to == nil {
			continue
		}
		ra := Ratio{Name: q.name, Of: q.of, To: q.to, Value: of.WritesPerSec / to.WritesPerSec, Target: q.target}
		if of.CPUPerMillion > 0 {
			ra.CPU = to.CPUPerMillion / of.CPUPerMillion
		}
		if q.target > 0 {
			met := ra.Value >= q.target
			ra.Met = &met
		}
		r.Ratios = append(r.Ratios, ra)
	}
}

// Failed reports whether a target that ran failed.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		for _, ph := range res.phases() {
			if ph.Error != "" {
				return true
			}
		}
	}
	return false
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// phases returns the phases r ran.
func (r Result) phases() []*Phase {
	var out []*Phase
	for _, p := range []*Phase{r.Full, r.Rate, r.Loaded} {
		if p != nil {
			out = append(out, p)
		}
	}
	if n := len(r.Sustained); n > 0 {
		out = append(out, r.Sustained[:n-1]...) // the last step is the one that did not hold
	}
	return out
}

// columns heads the table.
var columns = []string{"target", "writes/s", "audited s", "lag p50 ms", "p99 ms", "p99.9 ms",
	"loaded w/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU s/M writes",
	"of it servers", "RSS MiB", "heap MiB", "servers RSS MiB", "wire B/write", "audit B/write", "sustained w/s"}

// rows returns the table's cells, and the errors of the phases that failed.
func (r *Report) rows() (rows [][]string, errs []string) {
	for _, res := range r.Results {
		if res.Skipped != "" {
			rows = append(rows, []string{res.Name, "skipped: " + res.Skipped})
			continue
		}
		f := res.Full
		row := []string{res.Name, num(f.WritesPerSec, f.Error), "-", "-", "-", "-", "-", "-", "-", "-",
			fmt.Sprintf("%.1f", f.CPUPerMillion), fmt.Sprintf("%.1f", f.CPUServers*1e6/float64(f.Writes)),
			mib(f.PeakRSS), mib(f.PeakHeapSys), mib(f.ServerPeakRSS),
			fmt.Sprintf("%.0f", f.WireBytesPerWrite), fmt.Sprintf("%.0f", f.AuditWireBytesPerWrite), "-"}
		if res.Sustained != nil {
			row[len(row)-1] = fmt.Sprintf("%.0f", res.SustainedRate)
		}
		if f.AuditDone > 0 {
			row[2] = fmt.Sprintf("%.2f", f.AuditDone)
		}
		if p := res.Rate; p != nil && p.Lag != nil {
			row[3], row[4], row[5] = ms(p.Lag.P50, p.Error), ms(p.Lag.P99, p.Error), ms(p.Lag.P999, p.Error)
		}
		if p := res.Loaded; p != nil && p.Lag != nil {
			row[6] = num(p.WritesPerSec, p.Error)
			row[7], row[8], row[9] = ms(p.Lag.P50, p.Error), ms(p.Lag.P99, p.Error), ms(p.Lag.P999, p.Error)
		}
		rows = append(rows, row)
		for _, p := range res.phases() {
			if p.Error != "" {
				errs = append(errs, fmt.Sprintf("%s: %s", res.Name, p.Error))
			}
		}
	}
	return rows, errs
}

func (r *Report) heading() string {
	n := fmt.Sprintf("%d (ceilings: %d", r.Config.N, r.Config.CeilingN)
	if r.Config.ElasticN != 0 {
		n += fmt.Sprintf(", +elastic rows: %d", r.Config.ElasticN)
	}
	n += ")"
	lag := "no fixed-rate phase"
	if r.Config.Rate > 0 {
		lag = fmt.Sprintf("lag at %d writes/s for %gs", r.Config.Rate, r.Config.RateFor)
	}
	if r.Config.Load > 0 {
		lag += fmt.Sprintf(", loaded: lag at %g of what each target sustains at full speed, for %gs", r.Config.Load, r.Config.RateFor)
	}
	if r.Config.SustainFor > 0 {
		lag += fmt.Sprintf("; sustained (+elastic rows): the highest of 5000 writes/s doubling, %gs a step, applied and audited within 5 s", r.Config.SustainFor)
	}
	return fmt.Sprintf("%s writes of %d B, %d writers; %s; %s, %d cores, load average %s at start, %s at end",
		n, r.Config.Payload, r.Config.Writers, lag, r.Machine.CPU, r.Machine.Cores, r.Machine.LoadAtStart, r.Machine.LoadAtEnd)
}

// String says the ratio in words, with its target and the CPU comparison.
func (q Ratio) String() string {
	s := fmt.Sprintf("%s: %s", q.Name, ratio(q.Value))
	if q.Met != nil {
		s += fmt.Sprintf(" (target ≥ %s: %s)", ratio(q.Target), map[bool]string{true: "met", false: "NOT met"}[*q.Met])
	}
	if q.CPU > 0 {
		s += fmt.Sprintf("; CPU per write: %s of the other's", ratio(1/q.CPU))
	}
	return s
}

// WriteTable writes the results as an aligned table, then the ratios and
// the errors.
func (r *Report) WriteTable(w io.Writer) {
	rows, errs := r.rows()
	width := make([]int, len(columns))
	for _, row := range append([][]string{columns}, rows...) {
		for i, c := range row {
			if len(row) == len(columns) {
				width[i] = max(width[i], utf8.RuneCountInString(c))
			}
		}
	}
	fmt.Fprintln(w, r.heading())
	fmt.Fprintln(w)
	for _, row := range append([][]string{columns}, rows...) {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", max(width[i]-utf8.RuneCountInString(c), 0))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			case len(row) < len(columns):
				b.WriteString("  " + c)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintln(w)
	for _, q := range r.Ratios {
		fmt.Fprintln(w, q)
	}
	for _, e := range errs {
		fmt.Fprintln(w, "error:", e)
	}
	writeWAN(w, r.WAN, false)
}

// WriteMarkdown writes the same as WriteTable as Markdown, for
// BENCHMARKS.md.
func (r *Report) WriteMarkdown(w io.Writer) {
	rows, errs := r.rows()
	fmt.Fprintf(w, "%s.\n\n", r.heading())
	fmt.Fprintf(w, "| %s |\n|---|%s\n", strings.Join(columns, " | "), strings.Repeat("---:|", len(columns)-1))
	for _, row := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
	for _, q := range r.Ratios {
		fmt.Fprintf(w, "- %s\n", q)
	}
	for _, e := range errs {
		fmt.Fprintf(w, "- error: %s\n", e)
	}
	writeWAN(w, r.WAN, true)
}

// summary is a line telling how r went, for the progress output.
func (r Result) summary() string {
	if r.Skipped != "" {
		return fmt.Sprintf("%-24s skipped: %s", r.Name, r.Skipped)
	}
	s := fmt.Sprintf("%-24s %9.0f writes/s", r.Name, r.Full.WritesPerSec)
	for _, p := range []*Phase{r.Rate, r.Loaded} {
		if p != nil && p.Lag != nil {
			s += fmt.Sprintf(", lag p50 %.2f ms p99 %.2f ms at %.0f/s", p.Lag.P50, p.Lag.P99, p.OfferedRate)
		}
	}
	for _, p := range r.phases() {
		if p.Error != "" {
			s += ": " + p.Error
		}
	}
	return s
}

func num(v float64, err string) string {
	if err != "" {
		return "FAILED"
	}
	return fmt.Sprintf("%.0f", v)
}

func ms(v float64, err string) string {
	if err != "" {
		return "FAILED"
	}
	return fmt.Sprintf("%.2f", v)
}

func mib(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

// ratio prints a ratio below 1 as a percentage and above as a multiple.
func ratio(v float64) string {
	switch {
	case v < 0.1:
		return fmt.Sprintf("%.1f%%", 100*v)
	case v < 1:
		return fmt.Sprintf("%.0f%%", 100*v)
	}
	return fmt.Sprintf("%.2fx", v)
}
