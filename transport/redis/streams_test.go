package redis

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/metrics/prom"
	"github.com/dcsync/dcsync/monitor"
)

// The Node reports its streams' lengths, pending entries and dead letters
// as read from a real Redis, and its dead letters through a monitor.Source.
func TestStreamStats(t *testing.T) {
	ctx := context.Background()
	srv := testserver.StartRedis(t)
	client := newClient(t, srv.Addr())
	node, err := NewNode(testConfig("unicom", client, map[string]goredis.UniversalClient{"telecom": client}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]monitor.StreamStat{
		"outbound": {Stream: "outbound"}, "inbound:telecom": {Stream: "inbound:telecom"},
		"apply": {Stream: "apply"}, "dead": {Stream: "dead"}}
	check := func(when string) {
		t.Helper()
		stats, err := node.StreamStats(ctx)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(stats) != len(want) {
			t.Fatalf("%s: %d streams, want %d: %+v", when, len(stats), len(want), stats)
		}
		for _, st := range stats {
			if st != want[st.Stream] {
				t.Errorf("%s: %+v, want %+v", when, st, want[st.Stream])
			}
		}
	}
	check("before any stream exists")

	// Three writes, one at a time: three entries in the outbound stream,
	// which no worker reads (the Node does not run).
	s, err := dcsync.New(node.Wire(dcsync.Config{Processor: newStore()}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if err := s.Write(ctx, &dcsync.Request{Key: "k", Op: "set", Payload: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	want["outbound"] = monitor.StreamStat{Stream: "outbound", Length: 3}
	check("after three writes")

	// Two groups take entries and acknowledge none: pending sums them.
	outbound := Key("dcsync", "unicom", "outbound")
	for group, count := range map[string]int64{"telecom": 2, localGroup: 1} {
		if err := client.XGroupCreate(ctx, outbound, group, "0").Err(); err != nil {
			t.Fatal(err)
		}
		if err := client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "c",
			Streams: []string{outbound, ">"}, Count: count}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want["outbound"] = monitor.StreamStat{Stream: "outbound", Length: 3, Pending: 3}
	check("with entries pending")

	// A dead letter, as a worker writes it.
	if err := client.XAdd(ctx, &goredis.XAddArgs{Stream: Key("dcsync", "unicom", "dead"), Values: []any{
		fieldHop, "apply", fieldStream, Key("dcsync", "unicom", "apply"), fieldEntry, "1-0",
		fieldReason, "invalid: no key", fieldID, "r1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	want["dead"] = monitor.StreamStat{Stream: "dead", Length: 1, DeadLetters: 1}
	check("with a dead letter")

	mon := monitor.New("unicom", []string{"telecom"})
	mon.AddSource(node.DeadLetterSource(10))
	snap := mon.Snapshot(ctx)
	if len(snap.DeadLetters) != 1 || snap.DeadLetters[0].Hop != "apply" || snap.DeadLetters[0].RequestID != "r1" ||
		snap.DeadLetters[0].Reason != "invalid: no key" || len(snap.Problems) != 0 {
		t.Fatalf("snapshot dead letters %+v, problems %v", snap.DeadLetters, snap.Problems)
	}

	// The gauges of metrics/prom read them.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prom.New(mon, prom.Options{Streams: node}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	for name, v := range map[string]float64{"dcsync_stream_length/outbound": 3, "dcsync_stream_pending/outbound": 3,
		"dcsync_stream_length/inbound:telecom": 0, "dcsync_stream_length/dead": 1, "dcsync_dead_letters": 1} {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("gauge %s = %v (found %v), want %v", name, g, ok, v)
		}
	}

	// Redis down: an error, and a problem in the snapshot.
	srv.Stop()
	if _, err := node.StreamStats(ctx); err == nil {
		t.Fatal("StreamStats with Redis down: no error")
	}
	if snap := mon.Snapshot(ctx); len(snap.Problems) != 1 {
		t.Fatalf("snapshot with Redis down: problems %v", snap.Problems)
	}
}
