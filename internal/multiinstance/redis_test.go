package multiinstance

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/monitor"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// Three instances per datacenter over the Redis Streams wiring, each
// datacenter on one Redis: every instance runs a Node (a consumer of its
// own in every group) and a Syncer wired by it, and a reconciler with the
// datacenter's lock and checkpoints; both datacenters share the audit log.
// The instance whose reconciler leads is killed mid-load, as kill -9 would:
// its connections to Redis are closed before its workers stop, so what it
// had read stays pending until the others claim it.
func TestRedis(t *testing.T) {
	w := newWorld()
	audit := memaudit.New(0)
	srvs := map[string]*testserver.Redis{}
	for _, dc := range dcs {
		srvs[dc] = testserver.StartRedis(t)
	}
	for _, dc := range dcs {
		for n := range instances {
			client := func(dc string) *goredis.Client {
				c := goredis.NewClient(&goredis.Options{Addr: srvs[dc].Addr(), MaxRetries: -1,
					DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
				t.Cleanup(func() { c.Close() })
				return c
			}
			local, remote := client(dc), client(peerOf(dc))
			node, err := dcredis.NewNode(dcredis.NodeConfig{DC: dc, Client: local,
				Peers:    map[string]goredis.UniversalClient{peerOf(dc): remote},
				Consumer: fmt.Sprintf("%s-%d", dc, n), Block: 50 * time.Millisecond,
				ClaimIdle: time.Second, TrimInterval: 100 * time.Millisecond,
				Backoff: dcsync.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond},
				Dedupe:  dcredis.DedupeOptions{ClaimTTL: 500 * time.Millisecond}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			in := &inst{dc: dc, n: n, proc: w.newProcessor(dc), lock: &killableLock{LeaderLock: node.Lock()}}
			s, err := dcsync.New(node.Wire(dcsync.Config{Processor: in.proc, Audit: audit, Logger: quiet}))
			if err != nil {
				t.Fatal(err)
			}
			in.sync = s
			stopNode := background(t, "Node of "+in.String(), func(ctx context.Context) error { return node.Run(ctx, s) })
			stop := func() { stopNode(); _ = s.Close() }
			in.kill = func() {
				_ = local.Close()
				_ = remote.Close()
				stop()
			}
			t.Cleanup(stop)
			rec, err := dcsync.NewReconciler(reconcilerConfig(dc, n, node.Senders()[peerOf(dc)], audit, in.lock,
				node.Checkpoints(), w.passes[dc]))
			if err != nil {
				t.Fatal(err)
			}
			in.stopRec = background(t, "reconciler of "+in.String(), rec.Run)
			in.claimed = func() uint64 { return node.Stats().Claimed }
			in.streams = node
			w.insts[dc] = append(w.insts[dc], in)
		}
	}
	w.run(t)

	// What the killed instance had read and not acknowledged was claimed
	// by the others: nothing stays pending in any stream.
	for _, dc := range dcs {
		var streams monitor.Streams // a survivor's Node
		for _, in := range w.insts[dc] {
			if !in.killed.Load() {
				streams = in.streams
			}
		}
		var stats []monitor.StreamStat
		until(t, "no entry pending in "+dc, func() bool {
			var err error
			if stats, err = streams.StreamStats(context.Background()); err != nil {
				return false
			}
			for _, st := range stats {
				if st.Pending > 0 || st.DeadLetters > 0 {
					return false
				}
			}
			return true
		}, func() string { return fmt.Sprintf("streams %+v", stats) })
		var claimed []uint64
		for _, in := range w.insts[dc] {
			claimed = append(claimed, in.claimed())
		}
		t.Logf("%s: streams %+v; entries claimed from dead consumers per instance %v", dc, stats, claimed)
	}
}
