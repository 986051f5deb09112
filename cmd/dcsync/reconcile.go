package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dcsync/dcsync"
)

// peerFlags collects repeated --peer NAME=URL flags.
type peerFlags map[string]string

func (p peerFlags) String() string { return fmt.Sprint(map[string]string(p)) }

func (p peerFlags) Set(v string) error {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return fmt.Errorf("want NAME=URL, got %q", v)
	}
	p[name] = url
	return nil
}

// reconcile runs reconciler passes for one datacenter and prints their
// reports. It reports whether the last pass left writes failing, or found
// writes it cannot repair (orphaned: no source record) or records it could
// not read.
func reconcile(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string,
	newSender newSender) (failing bool, err error) {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	var a auditFlags
	a.register(fs, getenv)
	var ops reconcileOps
	ops.register(fs, getenv)
	peers := peerFlags{}
	var (
		once       bool
		dc         string
		secretFile string
		cfg        dcsync.ReconcilerConfig
		keep       bool
	)
	fs.BoolVar(&once, "once", false, "run one pass and exit; without it, run a pass every --interval until interrupted")
	fs.StringVar(&dc, "dc", "", "the datacenter whose writes to repair (required)")
	fs.Var(peers, "peer", "a peer as NAME=URL of its HTTP collector endpoint; repeat for each peer (required)")
	fs.StringVar(&secretFile, "secret-file", "", "file holding the secret shared with the peers (default: $DCSYNC_SECRET)")
	fs.DurationVar(&cfg.Interval, "interval", time.Minute, "time between passes without --once")
	fs.DurationVar(&cfg.Lookback, "lookback", time.Hour, "where the window starts when there is no checkpoint")
	fs.DurationVar(&cfg.Overlap, "overlap", time.Minute, "how far before the checkpoint the window starts")
	fs.DurationVar(&cfg.Grace, "grace", 30*time.Second, "how long before now the window ends; writes younger than this are still on their way")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "bound of one send to a peer")
	fs.BoolVar(&keep, "checkpoint", true, "start from, and save, the checkpoint kept in Elasticsearch")
	fs.Usage = usageFunc(fs, "dcsync reconcile --once --dc NAME --peer NAME=URL [--peer ...] [flags]",
		"DCSYNC_SECRET=... dcsync reconcile --once --dry-run --dc eu --peer us=https://us.internal:8443/dcsync --redis redis://10.0.0.7:6379")
	if err := parse(fs, args, stderr); err != nil {
		return false, err
	}
	switch {
	case fs.NArg() != 0:
		return false, usageError{fmt.Sprintf("reconcile takes no arguments, got %q", fs.Args())}
	case dc == "":
		return false, usageError{"reconcile needs --dc"}
	case len(peers) == 0:
		return false, usageError{"reconcile needs at least one --peer NAME=URL"}
	}
	if cfg.Grace == 0 {
		cfg.Grace = -1 // the flag's 0 means none; the config's zero means the default
	}
	secret, err := readSecret(secretFile, getenv)
	if err != nil {
		return false, err
	}

	cfg.DC, cfg.Peers = dc, map[string]dcsync.Sender{}
	for name, url := range peers {
		s, err := newSender(dc, name, url, secret)
		if err != nil {
			return false, fmt.Errorf("peer %s: %w", name, err)
		}
		defer s.Close()
		cfg.Peers[name] = s
	}
	log, err := a.open(ctx, stderr)
	if err != nil {
		return false, err
	}
	defer log.Close()
	cfg.Audit = log
	if keep {
		cfg.Checkpoints = log.Checkpoints()
	}
	opsDone, err := ops.wire(&cfg, stderr)
	defer opsDone()
	if err != nil {
		return false, err
	}
	r, err := dcsync.NewReconciler(cfg)
	if err != nil {
		return false, err
	}
	for {
		rep, err := r.RunOnce(ctx)
		if err != nil {
			return false, err
		}
		printReport(stdout, dc, rep)
		ops.report(stdout, dc, rep)
		// The repairs' records must reach Elasticsearch before the process
		// ends: a temporary spool would go with it.
		if err := log.Flush(ctx); err != nil {
			return false, fmt.Errorf("audit records of the repairs: %w", err)
		}
		if once {
			return unhealthy(rep), nil
		}
		select {
		case <-ctx.Done():
			return unhealthy(rep), nil
		case <-time.After(cfg.Interval):
		}
	}
}

// readSecret reads the peers' secret from file, or from $DCSYNC_SECRET when
// file is empty.
func readSecret(file string, getenv func(string) string) ([]byte, error) {
	if file == "" {
		if s := getenv("DCSYNC_SECRET"); s != "" {
			return []byte(s), nil
		}
		return nil, usageError{"reconcile needs the peers' secret: --secret-file or $DCSYNC_SECRET"}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, errors.New("secret: file is empty")
	}
	return b, nil
}

// unhealthy reports whether a pass leaves something for an operator: writes
// still failing (those refused for clock skew among them), writes it cannot
// repair, or records it could not read. Writes dated in the future are
// printed, not failed on: a later pass sees them.
func unhealthy(rep dcsync.Report) bool {
	return rep.Failing > 0 || rep.Orphaned > 0 || rep.Unreadable > 0
}

func printReport(w io.Writer, dc string, rep dcsync.Report) {
	fmt.Fprintf(w, "reconcile %s  window %s .. %s\n", dc, stamp(rep.From), stamp(rep.To))
	fmt.Fprintf(w, "scanned %d  complete %d  repaired %d  failing %d  rejected %d  orphaned %d  sent %d\n",
		rep.Scanned, rep.Complete, rep.Repaired, rep.Failing, rep.Rejected, rep.Orphaned, rep.Sent)
	if rep.Orphaned > 0 {
		fmt.Fprintf(w, "ERROR: %d writes have no source record (orphaned): they cannot be repaired from the audit log\n", rep.Orphaned)
	}
	if rep.Unreadable+rep.Future+rep.SkewRefused > 0 {
		fmt.Fprintf(w, "not seen: unreadable %d  future-dated %d  refused for clock skew %d\n",
			rep.Unreadable, rep.Future, rep.SkewRefused)
	}
}
