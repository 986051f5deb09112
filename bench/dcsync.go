package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
)

// The two datacenters. Writes enter the origin; the peer applies them.
const (
	origin = "unicom"
	peer   = "telecom"
)

// secret is what the two datacenters share to sign batches.
var secret = []byte("dcsync-bench-shared-secret-0123456789")

// wiring connects two Syncers through one transport. Each transport is one
// small adapter implementing it; a fresh one serves each phase.
type wiring interface {
	// config completes the Config of cfg.DC, whose one peer is other:
	// Peers, and for the MQ wiring Reship and Dedupe.
	config(ctx context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error)
	// start makes s reachable by its peer and starts what it needs.
	start(ctx context.Context, e *env, s *dcsync.Syncer) error
	// stop stops what must stop before the Syncers close (workers).
	stop()
}

// transport names a wiring.
type transport struct {
	name   string
	needs  func(*Config) string
	wiring func() wiring
}

// transports are the dcsync transports measured.
var transports = []transport{
	{"memory", none, func() wiring { return &memoryWiring{} }},
	{"http", none, func() wiring { return &httpWiring{} }},
	{"http-journal", none, func() wiring { return &journalWiring{&httpWiring{}} }},
	{"grpc", none, func() wiring { return &grpcWiring{} }},
	{"redis", needRedis, func() wiring { return &redisWiring{} }},
	{"redis-cluster", needRedisCluster, func() wiring { return &redisClusterWiring{} }},
	{"kafka", needKafka, func() wiring { return &kafkaWiring{} }},
	// The defaults before Gather: every hop polls again at once.
	{"kafka-nogather", needKafka, func() wiring { return &kafkaWiring{gather: -1} }},
	// Fewer, larger fetches: up to 10ms of lag per hop for less broker CPU.
	{"kafka-fetch64k", needKafka, func() wiring { return &kafkaWiring{minBytes: 64 << 10, block: 10 * time.Millisecond} }},
}

// auditStore names an audit log.
type auditStore struct {
	name  string
	needs func(*Config) string
	// open returns the audit log of one datacenter, closed when the phase
	// ends, and what makes every record appended so far stored (nil when
	// Append stores them).
	open func(ctx context.Context, e *env, dc string) (dcsync.AuditLog, func(context.Context) error, error)
}

var auditStores = []auditStore{
	{"memory", none, func(context.Context, *env, string) (dcsync.AuditLog, func(context.Context) error, error) {
		return memaudit.New(0), nil, nil
	}},
	elasticStore,
}

func none(*Config) string { return "" }

// targets lists every target, in the order they run.
func targets(cfg *Config) []target {
	var ts []target
	for _, a := range auditStores {
		for _, t := range transports {
			ts = append(ts, dcsyncTarget(t, a))
		}
	}
	ts = append(ts, memory3Target)
	return append(ts, watermillTarget, httpPostTarget, xaddCeiling, httpCeiling, grpcCeiling, kafkaCeiling, kafkaAsyncCeiling, mirrorMakerTarget)
}

// dcsyncTarget is dcsync over transport t with audit store a.
func dcsyncTarget(t transport, a auditStore) target {
	name := "dcsync/" + t.name
	if a.name != "memory" {
		name += "+" + a.name
	}
	return target{name: name, kind: kindDcsync, transport: t.name, audit: a.name,
		needs: func(cfg *Config) string {
			if why := t.needs(cfg); why != "" {
				return why
			}
			return a.needs(cfg)
		},
		start: func(ctx context.Context, e *env) (system, error) { return startDcsync(ctx, e, t.wiring(), a) },
	}
}

// dcsyncSystem is two Syncers, unicom and telecom, joined by a wiring.
type dcsyncSystem struct {
	w       wiring
	origin  *dcsync.Syncer
	peer    *dcsync.Syncer
	others  []*dcsync.Syncer              // more peers of origin (dcsync/memory-3dc)
	flushes []func(context.Context) error // of the audit logs
	check   func() error                  // after a flush, when set: did every delivery succeed
}

// syncers returns every Syncer of d, the origin first.
func (d *dcsyncSystem) syncers() []*dcsync.Syncer {
	return append([]*dcsync.Syncer{d.origin, d.peer}, d.others...)
}

func startDcsync(ctx context.Context, e *env, w wiring, a auditStore) (system, error) {
	d := &dcsyncSystem{w: w}
	delivery := dcsync.Delivery{BatchSize: e.cfg.BatchSize, Workers: e.cfg.Workers}
	noop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	apply := dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error {
		e.apply(r.Payload)
		return nil
	})
	for _, dc := range []struct {
		name, other string
		proc        dcsync.Processor
		s           **dcsync.Syncer
	}{{origin, peer, noop, &d.origin}, {peer, origin, apply, &d.peer}} {
		audit, flush, err := a.open(ctx, e, dc.name)
		if err != nil {
			return nil, errors.Join(err, d.close())
		}
		if flush != nil {
			d.flushes = append(d.flushes, flush)
		}
		cfg, err := w.config(ctx, e, dcsync.Config{DC: dc.name, Processor: dc.proc, Audit: audit, Delivery: delivery}, dc.other)
		if err != nil {
			return nil, errors.Join(err, d.close())
		}
		if *dc.s, err = dcsync.New(cfg); err != nil {
			return nil, errors.Join(err, d.close())
		}
	}
	for _, s := range []*dcsync.Syncer{d.peer, d.origin} {
		if err := w.start(ctx, e, s); err != nil {
			return nil, errors.Join(err, d.close())
		}
	}
	return d, nil
}

func (d *dcsyncSystem) write(ctx context.Context, seq int, payload []byte) error {
	return d.origin.Write(ctx, &dcsync.Request{Key: "k" + strconv.Itoa(seq%4096), Op: "set", Payload: payload})
}

// flush waits until every audit record of the phase is stored.
func (d *dcsyncSystem) flush(ctx context.Context) error {
	for _, s := range d.syncers() {
		if err := s.Flush(ctx); err != nil {
			return err
		}
	}
	for _, f := range d.flushes {
		if err := f(ctx); err != nil {
			return err
		}
	}
	if d.check != nil {
		return d.check()
	}
	return nil
}

// close stops the wiring's workers, then closes the Syncers, the origin
// first so that what it still sends finds the peer open. The servers the
// wiring started close when the phase ends.
func (d *dcsyncSystem) close() error {
	d.w.stop()
	var errs []error
	for _, s := range d.syncers() {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
