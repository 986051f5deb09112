package redis

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/netdelay"
	"github.com/dcsync/dcsync/internal/testserver"
)

// keyLog records, per key, the sequence numbers (in the payload) of the
// writes a Processor applied, in the order it applied them.
type keyLog struct {
	mu   sync.Mutex
	seqs map[string][]uint64
}

func (l *keyLog) Process(_ context.Context, r *dcsync.Request) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seqs[r.Key] = append(l.seqs[r.Key], binary.LittleEndian.Uint64(r.Payload))
	return nil
}

// check returns how many distinct writes of each key were applied, and an
// error naming the first applied after a later write of its key.
func (l *keyLog) check() (map[string]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := make(map[string]int)
	for key, seqs := range l.seqs {
		seen := make(map[uint64]bool)
		var max uint64
		for i, seq := range seqs {
			if seen[seq] {
				continue // a duplicate: at least once
			}
			if len(seen) > 0 && seq < max {
				return nil, fmt.Errorf("key %s: write %d applied (%dth) after write %d", key, seq, i, max)
			}
			seen[seq], max = true, seq
		}
		got[key] = len(seen)
	}
	return got, nil
}

// Across a delay line long enough for a reship worker to keep several
// batches in flight, the writes to a few keys reach the peer's Processor
// in the order they were written, key by key. One worker a hop, so that
// nothing but the fence could reorder them.
func TestOrderAcrossAWANWithBatchesInFlight(t *testing.T) {
	const keys, perKey = 4, 1500
	ru, rt := testserver.StartRedis(t), testserver.StartRedis(t)
	line, err := netdelay.Start(netdelay.Config{Target: rt.Addr(), Delay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { line.Close() })
	cu, ct, remote := newClient(t, ru.Addr()), newClient(t, rt.Addr()), newClient(t, line.Addr())
	one := func(c NodeConfig) NodeConfig { c.Workers = 1; return c }
	log := &keyLog{seqs: make(map[string][]uint64)}
	u := start(t, "unicom", ru, one(testConfig("unicom", cu, map[string]goredis.UniversalClient{"telecom": remote})), newStore())
	start(t, "telecom", rt, one(testConfig("telecom", ct, map[string]goredis.UniversalClient{"unicom": cu})), log)

	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for seq := range uint64(perKey) {
				req := &dcsync.Request{Key: fmt.Sprintf("k%d", k), Op: "set", Payload: binary.LittleEndian.AppendUint64(nil, seq)}
				if err := u.sync.Write(context.Background(), req); err != nil {
					t.Errorf("write %d of k%d: %v", seq, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, 60*time.Second, func() bool {
		got, err := log.check()
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			if got[fmt.Sprintf("k%d", k)] < perKey {
				return false
			}
		}
		return true
	}, func() string {
		got, _ := log.check()
		return fmt.Sprintf("writes applied per key: %v of %d", got, perKey)
	})
	if n := u.node.overlapped.Load(); n == 0 {
		t.Fatal("no reship batch was launched beside another in flight; the test shows nothing")
	}
	t.Logf("%d batches launched beside another in flight", u.node.overlapped.Load())
}
