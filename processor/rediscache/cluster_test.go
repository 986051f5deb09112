//go:build unix

package rediscache_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// On a Redis Cluster, a batch's keys spread over the masters: the pipeline
// goes to each its own, and every write is applied once, newest wins.
func TestCacheOnCluster(t *testing.T) {
	cluster := testserver.StartRedisCluster(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(),
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}) // see docs/redis.md
	defer client.Close()
	c := rediscache.New(client, rediscache.Options{Prefix: "cache:"})
	ctx := context.Background()
	var batch []*dcsync.Request
	for i := range 200 {
		batch = append(batch, write(fmt.Sprint("a", i), "unicom", fmt.Sprint("k", i%100), rediscache.OpSet, uint64(i+1), fmt.Sprint("v", i)))
	}
	if err := c.ProcessBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		e := entry(t, c, fmt.Sprint("k", i))
		if want := fmt.Sprint("v", i+100); string(e.Value) != want || e.Version != uint64(i+101) {
			t.Errorf("k%d holds %q at version %d, want %q", i, e.Value, e.Version, want)
		}
	}
	masters := map[string]bool{}
	for i := range 100 {
		m, err := client.MasterForKey(ctx, fmt.Sprint("cache:k", i))
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
	}
	if len(masters) != 3 {
		t.Errorf("the keys are on %d masters, want 3", len(masters))
	}
}
