package redis

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// An entry declaring 200,000 empty frames, or a count far beyond what it
// holds, is refused as a whole before anything is allocated for its
// frames: it once cost 416 MiB of heap and 200,000 dead letters.
func TestCraftedEntryBounded(t *testing.T) {
	empty := strings.Repeat("\x00", 200_000)
	one := string(appendFrame(nil, string(encode(&dcsync.Request{ID: "a", Origin: "unicom", Key: "k", Version: 1}))))
	for name, values := range map[string]map[string]any{
		"200k empty frames": {fieldCount: "200000", fieldBatch: empty},
		"count beyond":      {fieldCount: "65536", fieldBatch: strings.Repeat(one, 100)},
		"count over limit":  {fieldCount: "1048576", fieldBatch: strings.Repeat(one, 10)},
		"17 short frames":   {fieldCount: "18", fieldBatch: strings.Repeat("\x01\x01", 17) + one},
	} {
		var err error
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err = decodeFrames(values)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 16<<10 {
			t.Errorf("%s: refusing it allocated %d bytes", name, n)
		}
	}
}

// An entry of 100 requests that all fail for good costs one dead letter,
// holding the entry and a sample of the reasons, not a hundred; one of
// 200,000 empty frames costs one too; the writes around them flow on.
func TestManyBadRequestsOneDeadLetter(t *testing.T) {
	u, tc := pair(t, nil)
	ctx := context.Background()
	var frames []byte
	for i := range 100 {
		frames = appendFrame(frames, string(encode(&dcsync.Request{ID: fmt.Sprintf("unversioned-%d", i), Origin: "unicom", Key: "k"})))
	}
	inbound := tc.node.inbound("telecom", "unicom")
	if err := tc.client.XAdd(ctx, &goredis.XAddArgs{Stream: inbound, Values: batchValues(100, frames)}).Err(); err != nil {
		t.Fatal(err)
	}
	// And 200,000 empty frames: one dead letter too, the entry whole.
	bomb := batchValues(200_000, make([]byte, 200_000))
	if err := tc.client.XAdd(ctx, &goredis.XAddArgs{Stream: inbound, Values: bomb}).Err(); err != nil {
		t.Fatal(err)
	}
	ids := write(t, u, "ok", 20)
	converge(t, tc, ids)
	dead := deadLetters(t, tc, 2)
	// Two workers read the entries: their dead letters come in either order.
	if len(dead) == 2 && strings.Contains(dead[0].Reason, "malformed stream entry") {
		dead[0], dead[1] = dead[1], dead[0]
	}
	if len(dead) != 2 || !strings.Contains(dead[1].Reason, "malformed stream entry") {
		t.Fatalf("%d dead letters, want 2: %+v", len(dead), dead)
	}
	d := dead[0]
	if !strings.Contains(d.Reason, "100 of the entry's 100 requests") || !strings.Contains(d.Reason, "and 97 more") ||
		!strings.Contains(d.Reason, "missing version") || d.Index != 0 {
		t.Fatalf("dead letter %+v", d)
	}
	raw, err := tc.client.XRange(ctx, tc.node.dead, d.ID, d.ID).Result()
	if err != nil || len(raw) != 1 || raw[0].Values[fieldBatch] != string(frames) {
		t.Fatalf("the dead letter does not hold the entry: %v", err)
	}
	drained(t, tc)
}
