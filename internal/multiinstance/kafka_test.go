package multiinstance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/memlock"
	"github.com/dcsync/dcsync/internal/testserver"
	dckafka "github.com/dcsync/dcsync/transport/kafka"
)

// TestMain gives TestKafka the brokers of scripts/test.sh, or starts a pair.
func TestMain(m *testing.M) { os.Exit(testserver.KafkaMain(m, false)) }

// Three instances per datacenter over the Kafka wiring, each datacenter on
// its own broker: every instance runs a Node (a member of every consumer
// group, so each hop's partitions spread over the instances) and a Syncer
// wired by it, sharing the datacenter's dedupe store, and a reconciler with
// the datacenter's lock; both datacenters share the audit log. The instance
// whose reconciler leads is killed mid-load: its clients close and its
// workers stop, and what it had read and not committed is read again by
// the instances its partitions go to.
func TestKafka(t *testing.T) {
	a, b := testserver.Kafka(t)
	brokers := map[string]string{dcs[0]: a, dcs[1]: b}
	var tag [3]byte
	_, _ = rand.Read(tag[:])
	prefix := "t-multiinstance-" + hex.EncodeToString(tag[:])
	w := newWorld()
	audit := memaudit.New(0)
	for _, dc := range dcs {
		dedupe := &dcsync.MemoryDedupe{} // one store per datacenter, as Redis's would be
		lock := &memlock.Lock{}
		for n := range instances {
			node, err := dckafka.NewNode(dckafka.NodeConfig{DC: dc, Brokers: []string{brokers[dc]},
				Peers: map[string][]string{peerOf(dc): {brokers[peerOf(dc)]}}, Prefix: prefix,
				Partitions: instances, Consumer: fmt.Sprintf("%s-%d", dc, n), Block: 50 * time.Millisecond,
				SessionTimeout: 6 * time.Second, BatchSize: 100,
				Backoff: dcsync.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			in := &inst{dc: dc, n: n, proc: w.newProcessor(dc), lock: &killableLock{LeaderLock: lock}}
			s, err := dcsync.New(node.Wire(dcsync.Config{Processor: in.proc, Audit: audit, Dedupe: dedupe, Logger: quiet}))
			if err != nil {
				t.Fatal(err)
			}
			in.sync = s
			stopNode := background(t, "Node of "+in.String(), func(ctx context.Context) error { return node.Run(ctx, s) })
			stop := func() { stopNode(); _ = s.Close(); node.Close() }
			in.kill = stop
			t.Cleanup(stop)
			rec, err := dcsync.NewReconciler(reconcilerConfig(dc, n, node.Senders()[peerOf(dc)], audit, in.lock,
				nil, w.passes[dc]))
			if err != nil {
				t.Fatal(err)
			}
			in.stopRec = background(t, "reconciler of "+in.String(), rec.Run)
			w.insts[dc] = append(w.insts[dc], in)
		}
	}
	w.run(t)
}
