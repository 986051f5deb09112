package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/hop"
	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/transport/transporttest"
)

func TestBadRecordsAreDeadLetteredWhileTheRestFlow(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	// A request telecom's store refuses for good, at unicom's apply hop,
	// and one that keeps failing past MaxAttempts.
	u.store.FailKey("refused-0", fmt.Errorf("no such table: %w", dcsync.ErrInvalid))
	u.store.FailKey("broken-0", errors.New("disk on fire"))
	before := write(t, tc, "before", 50)
	bad := write(t, tc, "refused", 1)
	bad = append(bad, write(t, tc, "broken", 1)...)
	// Records no Node wrote, in unicom's inbound topic for telecom: one that
	// does not decode, and one that claims to come from unicom itself.
	forged, err := record(u.node.inbound("unicom", "telecom"), &dcsync.Request{ID: "forged-1", Origin: "unicom",
		Key: "forged", Op: "set", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	garbage := &kgo.Record{Topic: forged.Topic, Key: []byte("garbage"), Value: []byte("\xff\xfenot a batch")}
	if err := tc.node.peers["unicom"].ProduceSync(ctx, garbage, forged).FirstErr(); err != nil {
		t.Fatal(err)
	}
	after := write(t, tc, "after", 50)
	converge(t, u, append(before, after...))

	dl := deadLetters(t, u, 4)
	got := map[string]DeadLetter{}
	for _, d := range dl {
		key := d.RequestID
		if d.Request == nil {
			key = "garbage"
		}
		got[key] = d
	}
	for key, want := range map[string]struct{ hop, reason string }{
		bad[0]:     {"apply", "no such table"},
		bad[1]:     {"apply", "disk on fire"},
		"forged-1": {"collect", "origin"},
		"garbage":  {"collect", "invalid"},
	} {
		d, ok := got[key]
		if !ok || d.Hop != want.hop || !strings.Contains(d.Reason, want.reason) {
			t.Errorf("dead letter of %s: %+v, want hop %s and a reason with %q", key, d, want.hop, want.reason)
		}
	}
	if d := got[bad[1]]; d.Attempts != 3 {
		t.Errorf("the failing write was dead-lettered after %d attempts, want 3", d.Attempts)
	}
	if d := got[bad[0]]; d.Attempts != 1 {
		t.Errorf("the refused write was dead-lettered after %d attempts, want 1", d.Attempts)
	}
}

func TestPeerBrokerRestartMidStream(t *testing.T) {
	u, tc := pair(t, nil)
	ids := write(t, u, "before", 300)
	testserver.KillKafka(t, "telecom")
	killed := true
	t.Cleanup(func() {
		if killed {
			testserver.ResumeKafka(t, "telecom")
		}
	})
	ids = append(ids, write(t, u, "during", 300)...)
	if !within(time.Minute, func() bool { return u.node.Stats().Stalled > 0 || u.sync.Stats().ShipFailed > 0 }) {
		t.Fatal("unicom's reship hop never noticed telecom down")
	}
	testserver.ResumeKafka(t, "telecom")
	killed = false
	ids = append(ids, write(t, u, "after", 300)...)
	converge(t, tc, ids)
	converge(t, u, ids)
	back := write(t, tc, "back", 100)
	converge(t, u, back)
	for _, d := range []*dc{u, tc} {
		if dl, err := d.node.DeadLetters(context.Background(), 10); err != nil || len(dl) > 0 {
			t.Errorf("%s dead-lettered %+v, %v", d.name, dl, err)
		}
	}
}

func TestWorkerProcessKilledMidBatch(t *testing.T) {
	ctx := context.Background()
	_, b := testserver.Kafka(t)
	p := prefix(t)
	cfg := testConfig("telecom", b, nil, p)
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := node.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := transporttest.Batch(200) // collected from a peer, handed to the apply topic
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	if err := hop.Err(node.handOff(ctx, reqs)); err != nil {
		t.Fatal(err)
	}

	// A service process of telecom takes the apply group's partitions and
	// gets stuck in its first batch; it is killed there.
	testserver.RunUntil(t, "github.com/dcsync/dcsync/internal/kafkaworker", "applying",
		"-dc", "telecom", "-brokers", b, "-prefix", p, "-batch", "50") // then SIGKILL, mid-batch
	offsets, err := kadm.NewClient(node.local).FetchOffsets(ctx, node.group("apply"))
	if err != nil {
		t.Fatal(err)
	}
	committed := int64(0)
	offsets.Each(func(o kadm.OffsetResponse) { committed += max(o.At, 0) })
	if committed != 0 {
		t.Fatalf("the killed worker committed %d offsets mid-batch", committed)
	}

	d := start(t, cfg, newStore())
	converge(t, d, ids)
	if st := d.node.Stats(); st.DeadLettered != 0 {
		t.Errorf("stats %+v, want nothing dead-lettered", st)
	}
}
