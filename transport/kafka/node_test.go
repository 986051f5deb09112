package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestReplicatesBothWaysThroughFaults(t *testing.T) {
	u, tc := pair(t, nil)
	// Transient faults: some keys fail to apply in unicom once (retried,
	// counting an attempt), and some fail as unavailable in telecom for as
	// long as the test says (held, not counted).
	flaky := errors.New("flaky store")
	for i := range 5 {
		tc.store.FailKey(fmt.Sprintf("u-%d", i), fmt.Errorf("%w", ErrUnavailable))
		u.store.failOnce(fmt.Sprintf("t-%d", i), flaky)
	}
	done := make(chan []string)
	go func() { done <- write(t, tc, "t", 300) }()
	idsU := write(t, u, "u", 300)
	idsT := <-done
	// The shared keys are written on both sides, concurrently.
	shared := make(chan []string)
	go func() { shared <- write(t, tc, "s", 100) }()
	idsU = append(idsU, write(t, u, "s", 100)...)
	idsT = append(idsT, <-shared...)
	if !within(time.Minute, func() bool { return tc.node.Stats().Stalled > 0 && u.node.Stats().Retried > 0 }) {
		t.Fatalf("faults not met: %+v %+v", u.node.Stats(), tc.node.Stats())
	}
	for i := range 5 {
		tc.store.FailKey(fmt.Sprintf("u-%d", i), nil)
	}
	all := append(append([]string{}, idsU...), idsT...)
	converge(t, u, all)
	converge(t, tc, all)
	if du, dt := u.store.Digest(), tc.store.Digest(); du != dt {
		t.Errorf("datacenters disagree: %d keys in unicom, digest %s; %d in telecom, digest %s",
			u.store.Keys(), du, tc.store.Keys(), dt)
	}
	for _, d := range []*dc{u, tc} {
		if dl, err := d.node.DeadLetters(context.Background(), 10); err != nil || len(dl) > 0 {
			t.Errorf("%s dead-lettered %+v, %v", d.name, dl, err)
		}
	}
}

// A Block franz-go would refuse (under 10ms) is refused by NewNode, not
// left to consumers that never start.
func TestNewNodeRefusesShortBlock(t *testing.T) {
	cfg := NodeConfig{DC: "unicom", Brokers: []string{"127.0.0.1:1"}, Block: 5 * time.Millisecond}
	if n, err := NewNode(cfg); err == nil {
		n.Close()
		t.Fatal("NewNode took a Block of 5ms")
	}
	cfg.Block = minBlock
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
}

// A worker waits Gather only when records come fast enough to fill the
// wait with gatherFrom of them, judged by their rate since the previous
// poll, and never after a full batch.
func TestGatherOnlyUnderLoad(t *testing.T) {
	n, err := NewNode(NodeConfig{DC: "unicom", Brokers: []string{"127.0.0.1:1"}, BatchSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ms := time.Millisecond
	for _, c := range []struct {
		what  string
		k     int
		since time.Duration
		want  bool
	}{
		{"1000 writes/s, a poll every 2ms", 2, 2 * ms, false},
		{"1000 writes/s, a buffered fetch", 3, ms / 4, false},
		{"1000 writes/s after a 40ms stall", 40, 40 * ms, false},
		{"1000 writes/s after an overrun wait", 12, 12 * ms, false},
		{"20,000 writes/s, a 3ms cycle", 60, 3 * ms, true},
		{"20,000 writes/s after a wait", 160, 8 * ms, true},
		{"a full batch: a backlog", 1024, 10 * ms, false},
	} {
		if got := n.gather(c.k, c.since); got != c.want {
			t.Errorf("%s (%d records in %v): gather %v, want %v", c.what, c.k, c.since, got, c.want)
		}
	}
	n.cfg.Gather = -1
	if n.gather(160, 8*ms) {
		t.Error("a negative Gather waited")
	}
}
