package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// reconcileOps are the flags of reconcile for the leader lock, dry runs
// and progress.
type reconcileOps struct {
	redisURL, prefix string
	dryRun           bool
	dry              *dryRun
	lock             *heldLock
}

func (o *reconcileOps) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&o.redisURL, "redis", getenv("DCSYNC_REDIS_URL"),
		"the datacenter's Redis `URL`: the pass takes the leader lock there first, as the services' reconcilers do (default $DCSYNC_REDIS_URL)")
	fs.StringVar(&o.prefix, "redis-prefix", "dcsync", "key prefix of the lock, as the MQ wiring's NodeConfig.Prefix: the lock is PREFIX:DC:leader")
	fs.BoolVar(&o.dryRun, "dry-run", false, "report what the pass would re-send; send, record and save nothing")
}

// wire changes cfg for the lock, a dry run and the progress line, and
// returns what to do once the passes are over.
func (o *reconcileOps) wire(cfg *dcsync.ReconcilerConfig, stderr io.Writer) (func(), error) {
	var closers []func()
	done := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	prog := newProgress(stderr, "reconcile "+cfg.DC+": deliveries", 0)
	cfg.Observer = dcsync.Observers(cfg.Observer, progressObserver{p: prog})
	closers = append(closers, prog.done)
	if o.dryRun {
		o.dry = &dryRun{sent: map[string][]string{}}
		for name, s := range cfg.Peers {
			cfg.Peers[name] = dryRunSender{Sender: s, peer: name, d: o.dry}
		}
		cfg.Audit = readOnlyAudit{cfg.Audit}
		if cfg.Checkpoints != nil {
			cfg.Checkpoints = readOnlyCheckpoints{cfg.Checkpoints}
		}
		return done, nil // a dry run competes with nobody: no lock
	}
	if o.redisURL == "" {
		fmt.Fprintln(stderr, "dcsync: warning: no --redis: the pass does not take the leader lock, and may run alongside the services' reconciler")
		return done, nil
	}
	opts, err := goredis.ParseURL(o.redisURL)
	if err != nil {
		return done, usageError{fmt.Sprintf("--redis: %v", err)}
	}
	client := goredis.NewClient(opts)
	closers = append(closers, func() { client.Close() })
	o.lock = &heldLock{LeaderLock: dcredis.NewLock(client, dcredis.Key(o.prefix, cfg.DC, "leader"))}
	cfg.Lock = o.lock
	closers = append(closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		o.lock.release(ctx)
	})
	return done, nil
}

// report prints what a pass did beyond its Report: that another reconciler
// held the lock, or what a dry run would have sent.
func (o *reconcileOps) report(w io.Writer, dc string, rep dcsync.Report) {
	if !rep.Leader {
		fmt.Fprintf(w, "another reconciler holds the leader lock of %s: this pass did nothing\n", dc)
	}
	if o.dry == nil {
		return
	}
	o.dry.mu.Lock()
	defer o.dry.mu.Unlock()
	fmt.Fprintln(w, "dry run: nothing was sent, recorded or saved; it would re-send:")
	for _, peer := range slices.Sorted(maps.Keys(o.dry.sent)) {
		ids := o.dry.sent[peer]
		fmt.Fprintf(w, "  to %s: %d writes\n", peer, len(ids))
		for _, id := range ids {
			fmt.Fprintf(w, "    %s\n", id)
		}
	}
	clear(o.dry.sent)
}

// dryRun collects what a dry run would have sent, by peer.
type dryRun struct {
	mu   sync.Mutex
	sent map[string][]string
}

// dryRunSender records the IDs it is given, sends nothing and reports
// success, so the pass counts them repaired.
type dryRunSender struct {
	dcsync.Sender
	peer string
	d    *dryRun
}

func (s dryRunSender) Send(_ context.Context, reqs []*dcsync.Request) error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, r := range reqs {
		s.d.sent[s.peer] = append(s.d.sent[s.peer], r.ID)
	}
	return nil
}

// readOnlyAudit reads trails and records nothing.
type readOnlyAudit struct{ dcsync.AuditLog }

func (readOnlyAudit) Append(context.Context, []dcsync.Entry) error { return nil }

// readOnlyCheckpoints loads the checkpoint and saves nothing.
type readOnlyCheckpoints struct{ dcsync.CheckpointStore }

func (readOnlyCheckpoints) Save(context.Context, string, time.Time) error { return nil }

// heldLock remembers the token that acquired the lock, to release it when
// the command ends rather than leave it to expire.
type heldLock struct {
	dcsync.LeaderLock
	mu    sync.Mutex
	token string
}

func (l *heldLock) Acquire(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	ok, err := l.LeaderLock.Acquire(ctx, token, ttl)
	if ok {
		l.mu.Lock()
		l.token = token
		l.mu.Unlock()
	}
	return ok, err
}

func (l *heldLock) release(ctx context.Context) {
	l.mu.Lock()
	token := l.token
	l.mu.Unlock()
	if token != "" {
		_ = l.LeaderLock.Release(ctx, token)
	}
}

// progressObserver counts a reconciler's deliveries on a progress line.
type progressObserver struct {
	dcsync.NopObserver
	p *progress
}

func (o progressObserver) SendDone(_ context.Context, _ dcsync.Send, errs []error) {
	o.p.add(len(errs))
}
