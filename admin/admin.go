// Package admin serves a datacenter's status page: its peers with their
// state, backlog and replication lag (p50/p99 a minute over the last
// minutes, as a small chart), the audit log and its spool, the last
// reconciler passes, the writes currently failing (linked to their traces)
// and the dead letters of the MQ wiring.
//
// The page is rendered on the server with html/template; the chart is inline
// SVG. It needs no JavaScript and nothing from the network, and refreshes
// itself every Refresh. The same data is served as JSON at status.json,
// which is what `dcsync status` reads.
//
//	mux.Handle("/status/", http.StripPrefix("/status", admin.Handler(admin.Config{Monitor: mon, Health: checker})))
package admin

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/monitor"
)

// Config configures the Handler. Monitor is required.
type Config struct {
	// Monitor follows the datacenter shown.
	Monitor *monitor.Monitor
	// Health, when set, shows readiness and its reasons.
	Health *health.Checker
	// TraceURL links a failing write's trace: "{trace}" is replaced by its
	// W3C trace ID, as in "http://jaeger.internal:16686/trace/{trace}".
	// Empty shows the trace ID without a link.
	TraceURL string
	// Refresh is how often the page reloads itself; default 10s, negative
	// never.
	Refresh time.Duration
}

// Status is what status.json serves: the Monitor's snapshot and, with a
// Checker, the readiness.
type Status struct {
	monitor.Snapshot
	Health *health.Status `json:"health,omitempty"`
}

//go:embed status.html
var page string

var tmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago":   ago,
	"ms":    ms,
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
}).Parse(page))

// Handler returns the status page handler: the page at "/" and its data at
// "/status.json".
func Handler(cfg Config) http.Handler {
	if cfg.Refresh == 0 {
		cfg.Refresh = 10 * time.Second
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /status.json", h.json)
	return mux
}

type handler struct{ cfg Config }

func (h *handler) status(r *http.Request) Status {
	st := Status{Snapshot: h.cfg.Monitor.Snapshot(r.Context())}
	if h.cfg.Health != nil {
		hs := h.cfg.Health.Evaluate(st.Snapshot)
		st.Health = &hs
	}
	return st
}

func (h *handler) json(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(h.status(r))
}

// view is what the template renders.
type view struct {
	Status
	Refresh int // seconds; 0 for none
	Peers   []peerView
	Failing []failingView
	// MoreFailing counts the failing writes not shown.
	MoreFailing int
}

// maxFailingShown bounds the failing writes the page lists.
const maxFailingShown = 20

type peerView struct {
	monitor.Peer
	Chart template.HTML // inline SVG
	Last  *monitor.LagPoint
}

type failingView struct {
	monitor.Failing
	TraceLink string
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	v := view{Status: h.status(r)}
	if h.cfg.Refresh > 0 {
		v.Refresh = max(int(h.cfg.Refresh/time.Second), 1)
	}
	for _, p := range v.Snapshot.Peers {
		pv := peerView{Peer: p, Chart: chart(p.Lag, v.Time)}
		if n := len(p.Lag); n > 0 {
			pv.Last = &p.Lag[n-1]
		}
		v.Peers = append(v.Peers, pv)
	}
	for i, f := range v.Snapshot.Failing {
		if i == maxFailingShown {
			v.MoreFailing = len(v.Snapshot.Failing) - i
			break
		}
		fv := failingView{Failing: f}
		if f.TraceID != "" && h.cfg.TraceURL != "" {
			fv.TraceLink = strings.ReplaceAll(h.cfg.TraceURL, "{trace}", f.TraceID)
		}
		v.Failing = append(v.Failing, fv)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

// Size of a lag chart, in pixels.
const chartW, chartH = 240, 48

// chart draws p50 and p99 lag by minute, for the last LagMinutes minutes
// up to now, as an SVG with a line each; empty minutes are gaps.
func chart(points []monitor.LagPoint, now time.Time) template.HTML {
	var peak time.Duration
	for _, p := range points {
		peak = max(peak, p.P99)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="lag" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="lag p50 and p99, last %d minutes">`,
		chartW, chartH+12, chartW, chartH+12, monitor.LagMinutes)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" class="bg"/>`, chartW, chartH)
	if peak > 0 {
		first := now.Truncate(time.Minute).Add(-(monitor.LagMinutes - 1) * time.Minute)
		for _, q := range []struct {
			class string
			get   func(monitor.LagPoint) time.Duration
		}{{"p99", func(p monitor.LagPoint) time.Duration { return p.P99 }}, {"p50", func(p monitor.LagPoint) time.Duration { return p.P50 }}} {
			var line, dots strings.Builder
			for _, p := range points {
				i := int(p.Minute.Sub(first) / time.Minute)
				x := float64(i)*float64(chartW-4)/float64(monitor.LagMinutes-1) + 2
				y := float64(chartH) - float64(q.get(p))/float64(peak)*float64(chartH-4)
				fmt.Fprintf(&line, "%.1f,%.1f ", x, y)
				fmt.Fprintf(&dots, `<circle class="%s" cx="%.1f" cy="%.1f" r="2"/>`, q.class, x, y)
			}
			fmt.Fprintf(&b, `<polyline class="%s" points="%s"/>%s`, q.class, line.String(), dots.String())
		}
	}
	fmt.Fprintf(&b, `<text x="0" y="%d">-%dm</text><text x="%d" y="%d" text-anchor="end">max p99 %s</text></svg>`,
		chartH+11, monitor.LagMinutes, chartW, chartH+11, ms(peak))
	return template.HTML(b.String()) // built from numbers only
}

// ms formats d in milliseconds, or seconds past ten of them.
func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/1e6)
}

// ago formats how long before now t was.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Truncate(time.Second).String() + " ago"
}
