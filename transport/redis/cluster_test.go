//go:build unix

package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

func newClusterClient(t testing.TB, addrs []string) *goredis.ClusterClient {
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}) // see docs/redis.md
	t.Cleanup(func() { c.Close() })
	return c
}

// Both datacenters keep their streams on one Redis Cluster of three
// masters with a replica each (their hash tags put them in slots of their
// own), and write while the master of unicom's slot is killed: its replica
// takes over, the killed node comes back as a replica, and every write
// acknowledged is applied in both datacenters.
func TestClusterFailoverLosesNothing(t *testing.T) {
	cluster := testserver.StartRedisCluster(t)
	ctx := context.Background()
	cu, ct := newClusterClient(t, cluster.Addrs()), newClusterClient(t, cluster.Addrs())
	cfgU := testConfig("unicom", cu, map[string]goredis.UniversalClient{"telecom": ct})
	cfgT := testConfig("telecom", ct, map[string]goredis.UniversalClient{"unicom": cu})
	for _, c := range []*NodeConfig{&cfgU, &cfgT} {
		c.Replicas, c.ReplicaTimeout = 1, 300*time.Millisecond
		c.MaxAttempts = 1 << 20 // the failover's errors are not the entries' fault
	}
	u := start(t, "unicom", nil, cfgU, newStore())
	tc := start(t, "telecom", nil, cfgT, newStore())
	if err := u.node.CheckPersistence(ctx); err != nil {
		t.Errorf("the cluster's persistence: %v", err)
	}

	var mu sync.Mutex
	acked := map[*dc][]string{}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*dc{u, tc} {
		wg.Go(func() {
			for i := 0; wctx.Err() == nil && i < 5000; i++ {
				req := &dcsync.Request{Key: fmt.Sprintf("k-%d", i%50), Op: "set", Payload: []byte(d.name)}
				c, cancel := context.WithTimeout(wctx, 5*time.Second)
				err := d.sync.Write(c, req)
				cancel()
				if err == nil {
					mu.Lock()
					acked[d] = append(acked[d], req.ID)
					mu.Unlock()
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	count := func(d *dc) int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked[d])
	}
	eventually(t, 30*time.Second, func() bool { return count(u) >= 200 && count(tc) >= 200 },
		func() string { return "writes do not go through" })

	master, err := cu.MasterForKey(ctx, u.node.outbound)
	if err != nil {
		t.Fatal(err)
	}
	killed := master.Options().Addr
	cluster.Kill(killed)
	before := count(u)
	// A replica takes over the slot; with it alone, Writes fail (Replicas
	// is 1) until the killed node is back, as its replica.
	eventually(t, 60*time.Second, func() bool {
		m, err := cu.MasterForKey(ctx, u.node.outbound)
		if err != nil || m.Options().Addr == killed {
			cu.ReloadState(ctx)
			return false
		}
		return true
	}, func() string { return "no replica took over " + killed })
	cluster.Restart(killed)
	eventually(t, 60*time.Second, func() bool { return count(u) >= before+200 },
		func() string { return fmt.Sprintf("unicom's writes stopped at %d after the failover", count(u)) })
	stop()
	wg.Wait()

	all := append(append([]string(nil), acked[u]...), acked[tc]...)
	converge(t, u, all)
	converge(t, tc, all)
	for _, d := range []*dc{u, tc} {
		if dl, _ := d.node.DeadLetters(ctx, "", 10); len(dl) > 0 {
			t.Errorf("%s dead-lettered %+v", d.name, dl)
		}
	}
	t.Logf("%d writes in unicom, %d in telecom; unicom's node %+v, telecom's %+v",
		len(acked[u]), len(acked[tc]), u.node.Stats(), tc.node.Stats())
}
