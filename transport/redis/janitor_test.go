package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/testserver"
)

func TestTrimKeepsWhatAnyGroupHasNotAcknowledged(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, testserver.StartRedis(t).Addr())
	n, err := NewNode(NodeConfig{DC: "unicom", Client: client})
	if err != nil {
		t.Fatal(err)
	}
	const s = "s"
	var ids []string
	for i := range 10 {
		id, err := client.XAdd(ctx, &goredis.XAddArgs{Stream: s, Values: []any{"i", i}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := n.trim(ctx, s); err != nil { // no group has read it yet
		t.Fatal(err)
	}
	if l := client.XLen(ctx, s).Val(); l != 10 {
		t.Fatalf("stream without groups trimmed to %d entries", l)
	}
	read := func(group string, count int64) {
		t.Helper()
		if err := client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "c",
			Streams: []string{s, ">"}, Count: count}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []string{"a", "b"} {
		if err := client.XGroupCreate(ctx, s, g, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	read("a", 10)
	client.XAck(ctx, s, "a", ids[:5]...) // a has 5..9 pending
	read("b", 3)
	client.XAck(ctx, s, "b", ids[:3]...) // b acknowledged 0..2, has not read 3..9
	if err := n.trim(ctx, s); err != nil {
		t.Fatal(err)
	}
	left, err := client.XRange(ctx, s, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 8 || left[0].ID != ids[2] {
		t.Fatalf("after trim, %d entries left from %s; want 8 from %s", len(left), left[0].ID, ids[2])
	}

	read("b", 10)
	client.XAck(ctx, s, "b", ids[3:]...)
	client.XAck(ctx, s, "a", ids[5:]...)
	if err := n.trim(ctx, s); err != nil {
		t.Fatal(err)
	}
	if l := client.XLen(ctx, s).Val(); l != 1 { // the last entry read stays
		t.Fatalf("all acknowledged: %d entries left, want 1", l)
	}
	if st := n.Stats(); st.Trimmed != 9 {
		t.Errorf("stats count %d trimmed, want 9", st.Trimmed)
	}
}

func TestJanitorForgetsConsumersOfStoppedProcesses(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, testserver.StartRedis(t).Addr())
	n, err := NewNode(NodeConfig{DC: "unicom", Client: client, Consumer: "me"})
	if err != nil {
		t.Fatal(err)
	}
	g := &group{n: n, stream: "s", name: "g"}
	if err := g.create(ctx); err != nil {
		t.Fatal(err)
	}
	client.XAdd(ctx, &goredis.XAddArgs{Stream: "s", Values: []any{"f", 1}})
	for _, c := range []string{"gone-idle", "me:apply:0"} {
		client.XGroupCreateConsumer(ctx, "s", "g", c)
	}
	client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "gone-pending", Streams: []string{"s", ">"}})
	n.staleConsumer = time.Nanosecond
	time.Sleep(10 * time.Millisecond) // Redis counts idle time in milliseconds
	if err := n.forgetConsumers(ctx, g, "me:"); err != nil {
		t.Fatal(err)
	}
	consumers, err := client.XInfoConsumers(ctx, "s", "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range consumers {
		names = append(names, c.Name)
	}
	// Gone with nothing pending: forgotten. Pending entries, or this
	// process's own: kept.
	if len(names) != 2 || names[0] != "gone-pending" || names[1] != "me:apply:0" {
		t.Errorf("consumers left: %v, want [gone-pending me:apply:0]", names)
	}
}
