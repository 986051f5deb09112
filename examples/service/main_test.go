package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/testserver"
)

var secret = []byte("unicom-telecom test secret, 32 b")

func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }

// Two datacenters, each with its own Redis, both logging to one
// Elasticsearch, replicate writes both ways over HTTP; each runs its
// reconciler under the Redis leader lock and keeps its checkpoint there;
// both stop cleanly when their context ends.
func TestTwoDatacenters(t *testing.T) {
	es := testserver.Elastic(t)
	index := testserver.IndexPrefix(t, es)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dcs := []string{"unicom", "telecom"}
	lns := map[string]net.Listener{}
	redises := map[string]string{}
	for _, dc := range dcs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[dc], redises[dc] = ln, testserver.StartRedis(t).Addr()
	}
	done := map[string]chan error{}
	for i, dc := range dcs {
		peer := dcs[1-i]
		cfg := config{dc: dc, peer: peer, peerURL: "http://" + lns[peer].Addr().String() + "/dcsync",
			secret: secret, redis: redises[dc], elastic: es, index: index, journal: t.TempDir()}
		ch := make(chan error, 1)
		done[dc] = ch
		go func() { ch <- run(ctx, lns[dc], cfg) }()
	}
	url := func(dc, key string) string { return "http://" + lns[dc].Addr().String() + "/kv/" + key }

	// Both serve once they have connected to their stores: until then the
	// listener holds the connection.
	for _, dc := range dcs {
		if got := get(t, url(dc, "none")); got != "" {
			t.Fatalf("%s reads %q for a key never written", dc, got)
		}
	}

	// A write in unicom that waits for telecom is read there at once.
	put(t, url("unicom", "user:1")+"?wait=all", "alice")
	if got := get(t, url("telecom", "user:1")); got != "alice" {
		t.Fatalf("telecom reads %q", got)
	}
	// A write in telecom reaches unicom.
	put(t, url("telecom", "user:2"), "bob")
	eventually(t, func() bool { return get(t, url("unicom", "user:2")) == "bob" })

	// Both logged their stages to Elasticsearch.
	eventually(t, func() bool {
		resp, err := http.Get(es + "/" + index + "-*/_count?q=stage:apply")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var c struct{ Count int }
		return json.NewDecoder(resp.Body).Decode(&c) == nil && c.Count >= 2
	})

	// Each datacenter's reconciler ran a pass as leader and saved its
	// checkpoint in its own Redis.
	for _, dc := range dcs {
		rdb := redis.NewClient(&redis.Options{Addr: redises[dc]})
		defer rdb.Close()
		eventually(t, func() bool {
			n, err := rdb.Exists(ctx, "service:reconciler:"+dc, "service:checkpoint:"+dc).Result()
			return err == nil && n == 2
		})
	}

	cancel()
	for _, dc := range dcs {
		select {
		case err := <-done[dc]:
			if err != nil {
				t.Errorf("%s: run: %v", dc, err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s did not stop", dc)
		}
	}
}

// The program stops on SIGTERM and exits 0.
func TestStopsOnSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "service")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-dc", "unicom", "-listen", "127.0.0.1:0",
		"-peer", "telecom=http://127.0.0.1:1/dcsync", "-redis", testserver.StartRedis(t).Addr(), "-journal", t.TempDir())
	cmd.Env = append(os.Environ(), "DCSYNC_SECRET="+string(secret))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		// The log's first line names the address; the rest is drained.
		sc := bufio.NewScanner(stderr)
		listening := regexp.MustCompile(`listening addr=(\S+)`)
		var addr string
		for addr == "" && sc.Scan() {
			t.Log(sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr = m[1]
			}
		}
		if addr != "" {
			put(t, "http://"+addr+"/kv/user:1", "alice") // the peer is down: applied here only
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("still running two minutes after SIGTERM")
	}
}

func put(t *testing.T, url, value string) {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(value))
	if err != nil {
		t.Error(err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("PUT %s: %s", url, resp.Status)
	}
}

// get returns the value the service reads, or "" when not found.
func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}

// eventually polls cond for up to a minute.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
	}
}
