package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/metrics/prom"
	"github.com/dcsync/dcsync/monitor"
)

// The Node reports, per hop, its topic's records and the records its group
// has not committed, as read from a real broker, its dead letters through a
// monitor.Source, and metrics/prom turns them into gauges.
func TestTopicStats(t *testing.T) {
	ctx := context.Background()
	a, b := testserver.Kafka(t)
	cfg := testConfig("unicom", a, map[string][]string{"telecom": {b}}, prefix(t))
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	type key struct{ topic, hop string }
	want := map[key]monitor.TopicStat{}
	for _, k := range []key{{"outbound", "local"}, {"outbound", "reship:telecom"}, {"inbound:telecom", "collect"},
		{"apply", "apply"}, {"dead", ""}} {
		want[k] = monitor.TopicStat{Topic: k.topic, Hop: k.hop}
	}
	check := func(when string) {
		t.Helper()
		stats, err := node.TopicStats(ctx)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(stats) != len(want) {
			t.Fatalf("%s: %d stats, want %d: %+v", when, len(stats), len(want), stats)
		}
		for _, st := range stats {
			if w := want[key{st.Topic, st.Hop}]; st != w {
				t.Errorf("%s: %+v, want %+v", when, st, w)
			}
		}
	}
	// A fresh broker has no group coordinator for a moment: wait for it.
	within(time.Minute, func() bool { _, err := node.TopicStats(ctx); return err == nil })
	check("before any topic exists")

	// Three writes: three records in the outbound topic, which no worker
	// reads (the Node does not run), so both of its hops are behind by
	// three.
	s, err := dcsync.New(node.Wire(dcsync.Config{Processor: newStore()}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(t, &dc{name: cfg.DC, node: node, sync: s}, "k", 3)
	want[key{"outbound", "local"}] = monitor.TopicStat{Topic: "outbound", Hop: "local", Records: 3, Lag: 3}
	want[key{"outbound", "reship:telecom"}] = monitor.TopicStat{Topic: "outbound", Hop: "reship:telecom", Records: 3, Lag: 3}
	check("after three writes")

	// The local group commits all three, as its workers would once they
	// applied them; the reship group commits nothing.
	adm := kadm.NewClient(node.local)
	ends, err := adm.ListEndOffsets(ctx, node.outbound)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CommitAllOffsets(ctx, node.group("local"), ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	want[key{"outbound", "local"}] = monitor.TopicStat{Topic: "outbound", Hop: "local", Records: 3}
	check("after the local group committed")

	// A dead letter, as a worker writes it.
	rec := &kgo.Record{Topic: node.dead, Value: []byte("not a request"), Headers: []kgo.RecordHeader{
		{Key: headerHop, Value: []byte("apply")}, {Key: headerTopic, Value: []byte(node.apply)},
		{Key: headerPartition, Value: []byte("2")}, {Key: headerOffset, Value: []byte("7")},
		{Key: headerReason, Value: []byte("invalid: no key")}, {Key: headerID, Value: []byte("r1")}}}
	if err := node.local.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want[key{"dead", ""}] = monitor.TopicStat{Topic: "dead", Records: 1, DeadLetters: 1}
	check("with a dead letter")

	mon := monitor.New("unicom", []string{"telecom"})
	mon.AddSource(node.DeadLetterSource(10))
	snap := mon.Snapshot(ctx)
	if len(snap.DeadLetters) != 1 || len(snap.Problems) != 0 || snap.DeadLetters[0] != (monitor.DeadLetter{
		ID: node.apply + "/2/7", Hop: "apply", RequestID: "r1", Reason: "invalid: no key"}) {
		t.Fatalf("snapshot dead letters %+v, problems %v", snap.DeadLetters, snap.Problems)
	}

	// The gauges of metrics/prom read them: one topic_records per topic,
	// one topic_lag per hop.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prom.New(mon, prom.Options{Topics: node}))
	gauges := `
# HELP dcsync_dead_letters Entries given up into the dead-letter stream or topic.
# TYPE dcsync_dead_letters gauge
dcsync_dead_letters 1
# HELP dcsync_topic_lag Records of a Kafka topic that the consumer group of a hop has not committed.
# TYPE dcsync_topic_lag gauge
dcsync_topic_lag{hop="apply",topic="apply"} 0
dcsync_topic_lag{hop="collect",topic="inbound:telecom"} 0
dcsync_topic_lag{hop="local",topic="outbound"} 0
dcsync_topic_lag{hop="reship:telecom",topic="outbound"} 3
# HELP dcsync_topic_records Records in a Kafka topic of the MQ wiring.
# TYPE dcsync_topic_records gauge
dcsync_topic_records{topic="apply"} 0
dcsync_topic_records{topic="dead"} 1
dcsync_topic_records{topic="inbound:telecom"} 0
dcsync_topic_records{topic="outbound"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(gauges),
		"dcsync_dead_letters", "dcsync_topic_lag", "dcsync_topic_records"); err != nil {
		t.Error(err)
	}
}
