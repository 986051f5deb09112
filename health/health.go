// Package health tells a load balancer or an orchestrator whether a
// datacenter's dcsync is fit to take traffic, from what a monitor.Monitor
// sees.
//
// A datacenter is not ready while:
//   - a peer has been down (every batch sent to it failing) for longer
//     than PeerDownAfter;
//   - a peer's backlog exceeds MaxBacklog writes;
//   - the audit spool holds more than MaxSpool records (needs a monitor
//     Source filling Snapshot.Audit);
//   - with ReconcileInterval set, no reconciler pass has completed for
//     MissedPasses intervals (counting from the Monitor's start).
//
// Live is the liveness handler (/healthz): it answers 200 while the process
// serves. Ready (/readyz) answers 200 "ready", or 503 with one line per
// reason. The gRPC health service is fed by package health/grpchealth.
package health

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dcsync/dcsync/monitor"
)

// Config sets the conditions of readiness. The zero value of every field
// but Monitor selects its default.
type Config struct {
	// Monitor follows the datacenter; required.
	Monitor *monitor.Monitor
	// PeerDownAfter is how long a peer may be down before this datacenter
	// is not ready; default 1 minute, negative never.
	PeerDownAfter time.Duration
	// MaxBacklog is how many writes may wait for one peer; default 50,000,
	// negative for no limit.
	MaxBacklog int64
	// MaxSpool is how many audit records may wait in the spool; default
	// 100,000, negative for no limit.
	MaxSpool int64
	// ReconcileInterval is the reconciler's interval; zero does not check
	// the reconciler.
	ReconcileInterval time.Duration
	// MissedPasses is how many intervals may pass without a completed pass;
	// default 3.
	MissedPasses int
	// Now reads the clock; default time.Now.
	Now func() time.Time
}

// Checker evaluates readiness.
type Checker struct{ cfg Config }

// New returns the Checker of cfg.
func New(cfg Config) (*Checker, error) {
	if cfg.Monitor == nil {
		return nil, fmt.Errorf("health: Config.Monitor is required")
	}
	if cfg.PeerDownAfter == 0 {
		cfg.PeerDownAfter = time.Minute
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = 50_000
	}
	if cfg.MaxSpool == 0 {
		cfg.MaxSpool = 100_000
	}
	if cfg.MissedPasses == 0 {
		cfg.MissedPasses = 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Checker{cfg: cfg}, nil
}

// Status is the outcome of a check.
type Status struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"` // why not ready
}

// Check evaluates readiness now.
func (c *Checker) Check(ctx context.Context) Status {
	return c.Evaluate(c.cfg.Monitor.Snapshot(ctx))
}

// Evaluate evaluates readiness from a snapshot.
func (c *Checker) Evaluate(s monitor.Snapshot) Status {
	now := c.cfg.Now()
	var why []string
	for _, p := range s.Peers {
		if p.Down && c.cfg.PeerDownAfter >= 0 && now.Sub(p.DownSince) >= c.cfg.PeerDownAfter {
			why = append(why, fmt.Sprintf("peer %s down since %s: %s", p.Name,
				p.DownSince.UTC().Format(time.RFC3339), p.LastError))
		}
		if c.cfg.MaxBacklog >= 0 && p.Backlog > uint64(c.cfg.MaxBacklog) {
			why = append(why, fmt.Sprintf("peer %s backlog %d over %d", p.Name, p.Backlog, c.cfg.MaxBacklog))
		}
	}
	if a := s.Audit; a != nil && c.cfg.MaxSpool >= 0 && a.Pending > c.cfg.MaxSpool {
		why = append(why, fmt.Sprintf("audit spool holds %d records, over %d", a.Pending, c.cfg.MaxSpool))
	}
	if c.cfg.ReconcileInterval > 0 {
		last := s.Started
		for _, p := range s.Passes { // newest first
			if p.Error == "" {
				last = p.Time
				break
			}
		}
		if limit := time.Duration(c.cfg.MissedPasses) * c.cfg.ReconcileInterval; now.Sub(last) > limit {
			why = append(why, fmt.Sprintf("no reconciler pass completed since %s (%d intervals of %s)",
				last.UTC().Format(time.RFC3339), c.cfg.MissedPasses, c.cfg.ReconcileInterval))
		}
	}
	return Status{Ready: len(why) == 0, Reasons: why}
}

// Live returns the liveness handler: 200 "ok" while the process serves.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
}

// Ready returns the readiness handler: 200 "ready", or 503 "not ready"
// followed by one line per reason.
func (c *Checker) Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := c.Check(r.Context())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if st.Ready {
			fmt.Fprintln(w, "ready")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready\n%s\n", strings.Join(st.Reasons, "\n"))
	})
}
