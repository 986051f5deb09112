package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/testserver"
)

// TestRedisMQConverges runs the example against two redis-servers it
// starts, one per datacenter: never against a server a user named, which
// the run would write into.
func TestRedisMQConverges(t *testing.T) {
	o := options{redis: map[string]string{}, writes: 1000, timeout: time.Minute}
	for _, dc := range datacenters {
		o.redis[dc] = testserver.StartRedis(t).Addr()
	}
	var out bytes.Buffer
	if err := run(context.Background(), &out, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"converged: 2000/2000 writes present in every datacenter",
		"values agree on 100/100 keys",
		"telecom  apply    ok       1000", // telecom applied unicom's writes
		"unicom   reship   ok       1000",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func TestRedisMQFailsWithoutRedis(t *testing.T) {
	o := options{redis: map[string]string{"unicom": "127.0.0.1:1", "telecom": "127.0.0.1:1"},
		writes: 1, timeout: time.Second}
	err := run(context.Background(), &bytes.Buffer{}, o)
	if err == nil || !strings.Contains(err.Error(), "unicom: redis at 127.0.0.1:1") {
		t.Fatalf("run without Redis: %v", err)
	}
}
