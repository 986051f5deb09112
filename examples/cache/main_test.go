package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/testserver"
)

// TestCacheConverges runs the service on two redis-servers, writes and
// deletes in both datacenters, and checks that reads agree everywhere.
func TestCacheConverges(t *testing.T) {
	cfg := config{redis: map[string]string{}, listen: map[string]string{}}
	for _, dc := range datacenters {
		cfg.redis[dc] = testserver.StartRedis(t).Addr()
		cfg.listen[dc] = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	urlsCh := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, func(u map[string]string) { urlsCh <- u }) }()
	var urls map[string]string
	select {
	case urls = <-urlsCh:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	c := &kvClient{t: t, urls: urls}

	// A write in one datacenter is read in the other.
	c.do("unicom", "PUT", "user:1", "alice")
	c.expect("telecom", "user:1", "alice")
	c.expect("unicom", "user:1", "alice")

	// A delete in the other is seen in the first.
	c.do("telecom", "DELETE", "user:1", "")
	c.expect("unicom", "user:1", "")
	c.expect("telecom", "user:1", "")

	// Both write one key at once: both end with the same winner, the write
	// with the greater (version, origin).
	for round := range 20 {
		key := fmt.Sprintf("hot:%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var best write
		for _, dc := range datacenters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				op, value := "PUT", dc+"-value"
				if round%4 == 3 && dc == "telecom" {
					op, value = "DELETE", ""
				}
				w := c.do(dc, op, key, value)
				mu.Lock()
				if w.newer(best) {
					best = w
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		for _, dc := range datacenters {
			c.expect(dc, key, best.value)
		}
	}

	// Each datacenter's own Redis holds the entry, readable with redis-cli.
	for _, dc := range datacenters {
		client := redis.NewClient(&redis.Options{Addr: cfg.redis[dc]})
		h := client.HGetAll(context.Background(), "kv:hot:0").Val()
		client.Close()
		if h["ver"] == "" || h["origin"] == "" {
			t.Errorf("%s: HGETALL kv:hot:0 = %v, want a versioned entry", dc, h)
		}
	}
}

// kvClient speaks to the service's HTTP API.
type kvClient struct {
	t    *testing.T
	urls map[string]string
}

// write is what a PUT or DELETE answered.
type write struct {
	version uint64
	origin  string
	value   string // "" for a delete
}

func (w write) newer(o write) bool {
	if w.version != o.version {
		return w.version > o.version
	}
	return w.origin > o.origin
}

// do sends a PUT or DELETE to dc that waits for the other datacenter.
func (c *kvClient) do(dc, method, key, value string) write {
	c.t.Helper()
	req, err := http.NewRequest(method, c.urls[dc]+"/kv/"+key+"?wait=all", strings.NewReader(value))
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		c.t.Fatalf("%s %s in %s: %s %s", method, key, dc, resp.Status, body)
	}
	v, err := strconv.ParseUint(resp.Header.Get("X-Version"), 10, 64)
	if err != nil || resp.Header.Get("X-Origin") != dc {
		c.t.Fatalf("%s %s in %s: X-Version %q, X-Origin %q", method, key, dc,
			resp.Header.Get("X-Version"), resp.Header.Get("X-Origin"))
	}
	return write{version: v, origin: dc, value: value}
}

// expect checks that dc reads want for key; "" means not found.
func (c *kvClient) expect(dc, key, want string) {
	c.t.Helper()
	resp, err := http.Get(c.urls[dc] + "/kv/" + key)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case want == "" && resp.StatusCode != http.StatusNotFound:
		c.t.Errorf("GET %s in %s: %s %q, want 404", key, dc, resp.Status, body)
	case want != "" && (resp.StatusCode != http.StatusOK || string(body) != want):
		c.t.Errorf("GET %s in %s: %s %q, want %q", key, dc, resp.Status, body, want)
	}
}
