package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/testserver"
)

// TestRedisMQConverges runs the example against the datacenters' servers
// that scripts/redis.sh started, as a user would, or else against servers
// of its own.
func TestRedisMQConverges(t *testing.T) {
	o := options{redis: map[string]string{}, writes: 1000, timeout: time.Minute}
	for _, dc := range datacenters {
		if addr := os.Getenv(envName(dc)); addr != "" {
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			if err := c.FlushAll(context.Background()).Err(); err != nil { // a run of its own
				t.Fatalf("%s's Redis at %s: %v", dc, addr, err)
			}
			c.Close()
			o.redis[dc] = addr
			continue
		}
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
