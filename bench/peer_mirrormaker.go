package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mirrorMakerTarget is Kafka's own cross-cluster replication: a producer
// writes each write to a topic on unicom's broker and waits for its ack (as
// a service would), MirrorMaker 2 (dedicated mode, a task per partition, identity
// topic names) copies the topic to telecom's broker, and a consumer there
// applies. A MirrorMaker JVM starts per phase, which takes tens of seconds
// on this machine (inside the phase's warm-up), so the row runs only with
// -mm2.
var mirrorMakerTarget = target{name: "mirrormaker2/kafka", kind: kindPeer, transport: "kafka",
	needs: func(cfg *Config) string {
		if !cfg.MirrorMaker {
			return "MirrorMaker 2 runs with -mm2 (a JVM per phase)"
		}
		return needKafka(cfg)
	},
	start: startMirrorMaker}

type mirrorMakerSystem struct {
	prod  *kgo.Client
	topic string
}

func startMirrorMaker(ctx context.Context, e *env) (system, error) {
	var once sync.Once
	var prefix string
	topic := kafkaPhase(e, &once, &prefix) + ".mirrored"
	dir, err := os.MkdirTemp("", "dcsync-bench-mm2-")
	if err != nil {
		return nil, err
	}
	e.onClose(func() { os.RemoveAll(dir) })
	props := filepath.Join(dir, "mm2.properties")
	conf := fmt.Sprintf(`clusters = A, B
A.bootstrap.servers = %s
B.bootstrap.servers = %s
A->B.enabled = true
A->B.topics = %s
B->A.enabled = false
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
replication.factor = 1
refresh.topics.interval.seconds = 1
sync.topic.configs.enabled = false
sync.topic.acls.enabled = false
emit.checkpoints.enabled = false
emit.heartbeats.enabled = false
offset-syncs.topic.replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
config.storage.replication.factor = 1
offset.storage.replication.factor = 1
status.storage.replication.factor = 1
tasks.max = 4
`, e.cfg.KafkaA, e.cfg.KafkaB, strings.ReplaceAll(topic, ".", `\\.`))
	if err := os.WriteFile(props, []byte(conf), 0o644); err != nil {
		return nil, err
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(e.cfg, origin)...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowIdempotentProduceCancellation(), kgo.ProducerLinger(0), kgo.Dialer(e.wire.dial))
	if err != nil {
		return nil, err
	}
	e.onClose(prod.Close)
	if _, err := kadm.NewClient(prod).CreateTopics(ctx, 4, -1, nil, topic); err != nil {
		return nil, err
	}

	cmd := exec.Command("bash", filepath.Join("..", "scripts", "kafka.sh"), "mirrormaker", props)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scripts/kafka.sh mirrormaker: %w", err)
	}
	// The script execs the JVM: the pid is MirrorMaker's.
	e.addProcess(process{name: "mirrormaker2", pid: cmd.Process.Pid})
	e.onClose(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	cons, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(e.cfg, peer)...), kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond), kgo.Dialer(e.wire.dial))
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f := cons.PollFetches(context.Background())
			if f.IsClientClosed() {
				return
			}
			f.EachRecord(func(r *kgo.Record) { e.apply(r.Value) })
		}
	}()
	e.onClose(func() { cons.Close(); <-done })
	return &mirrorMakerSystem{prod: prod, topic: topic}, nil
}

func (m *mirrorMakerSystem) write(ctx context.Context, seq int, payload []byte) error {
	return m.prod.ProduceSync(ctx, &kgo.Record{Topic: m.topic, Key: []byte(fmt.Sprint("k", seq%4096)), Value: payload}).FirstErr()
}

func (m *mirrorMakerSystem) close() error { return nil }
