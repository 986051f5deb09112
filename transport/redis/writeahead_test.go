package redis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
)

// A write whose add to the outbound stream fails is applied nowhere: not
// at the origin, whose workers apply only what the stream holds, nor at
// the peer.
func TestFailedWriteIsAppliedNowhere(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	// The outbound stream's key holds a string: the outbox's XADD fails.
	if err := u.client.Set(ctx, u.node.outbound, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	failed := &dcsync.Request{Key: "lost", Op: "set"}
	if err := u.sync.Write(ctx, failed); err == nil {
		t.Fatal("Write succeeded with a broken outbound stream")
	}
	if err := u.client.Del(ctx, u.node.outbound).Err(); err != nil {
		t.Fatal(err)
	}
	ids := write(t, u, "k", 100)
	converge(t, u, ids)
	converge(t, tc, ids)
	drained(t, u)
	drained(t, tc)
	for _, d := range []*dc{u, tc} {
		if d.store.has([]string{failed.ID}) != 0 {
			t.Errorf("%s applied the write whose Write failed", d.name)
		}
	}
	// At least once: an entry claimed again on a loaded machine (its apply
	// outlasting ClaimIdle) is applied, and counted, again.
	if st := u.sync.Stats(); st.Written < 100 {
		t.Errorf("unicom counts %d writes, want 100 or more", st.Written)
	}
}

// The origin applies its writes as a peer does, from its outbound stream:
// a Processor failing for a while delays the local apply without blocking
// the peers, and the write is applied once it recovers.
func TestOriginRetriesItsOwnApply(t *testing.T) {
	// Deliveries are not counted against the test's own pace.
	u, tc := pair(t, func(c *NodeConfig) { c.MaxAttempts = 1 << 20 })
	u.store.failKey("k-3", errors.New("database busy"))
	ids := write(t, u, "k", 10)
	converge(t, tc, ids)
	eventually(t, 30*time.Second, func() bool { return u.store.has(ids) == len(ids)-1 },
		func() string { return fmt.Sprintf("unicom applied %d of its %d writes", u.store.has(ids), len(ids)) })
	u.store.failKey("k-3", nil)
	converge(t, u, ids) // its entry is claimed again after ClaimIdle
	drained(t, u)
	if dl, _ := u.node.DeadLetters(context.Background(), "", 10); len(dl) > 0 {
		t.Errorf("dead-lettered %+v", dl)
	}
}

func TestCheckPersistence(t *testing.T) {
	srv := testserver.StartRedis(t) // appendonly yes
	client := newClient(t, srv.Addr())
	node, err := NewNode(testConfig("unicom", client, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := node.CheckPersistence(ctx); err != nil {
		t.Errorf("with appendonly yes: %v", err)
	}
	if err := client.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if err := node.CheckPersistence(ctx); !errors.Is(err, ErrNotPersistent) {
		t.Errorf("with appendonly no: %v, want ErrNotPersistent", err)
	}
}
