package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestReplicatesBothWays(t *testing.T) {
	u, tc := pair(t, nil)
	fromU := write(t, u, "u", 500)
	fromT := write(t, tc, "t", 500)
	converge(t, tc, fromU)
	converge(t, u, fromT)
	// Each origin applies its own writes from its outbound stream.
	converge(t, u, fromU)
	converge(t, tc, fromT)

	// Every hop acknowledged and trimmed what it handed on.
	ctx := context.Background()
	eventually(t, 10*time.Second, func() bool {
		for _, d := range []*dc{u, tc} {
			for _, s := range []string{d.node.outbound, d.node.apply, d.node.inbound(d.name, peerOf(d.name))} {
				if n, _ := d.client.XLen(ctx, s).Result(); n > 1 {
					return false
				}
			}
		}
		return true
	}, func() string { return "streams not trimmed" })
	for _, d := range []*dc{u, tc} {
		if st := d.node.Stats(); st.DeadLettered != 0 {
			t.Errorf("%s dead-lettered %d entries", d.name, st.DeadLettered)
		}
		if st := d.sync.Stats(); st.Duplicates != 0 || st.Collected != 500 || st.Applied != 500 || st.Written != 500 {
			t.Errorf("%s syncer stats %+v, want 500 written, 500 collected and applied, no duplicates", d.name, st)
		}
	}
}

func peerOf(dc string) string {
	if dc == "unicom" {
		return "telecom"
	}
	return "unicom"
}

// Replicas needs to find the server of a stream: a Ring's shards are not
// known to hold one's keys with a replica, and NewNode says so at once.
func TestReplicasNeedsAKnownClient(t *testing.T) {
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := NewNode(NodeConfig{DC: "unicom", Client: ring, Replicas: 1}); err == nil {
		t.Error("NewNode took Replicas with a Ring")
	}
	if _, err := NewNode(NodeConfig{DC: "unicom", Client: ring}); err != nil {
		t.Errorf("NewNode with a Ring: %v", err)
	}
}
