package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/testserver"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// acks gathers the writes the processes acknowledged: key → request ID,
// and how many each process acknowledged.
type acks struct {
	mu    sync.Mutex
	keys  map[string]string
	count map[*proc]int
}

// proc is one running redisdc process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it printed "done"
	eof  chan struct{} // closed when its stdout ended
}

func (a *acks) of(p *proc) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count[p]
}

// run starts the binary as a process of dc named consumer in the consumer
// groups, and gathers its acks.
func (a *acks) run(t *testing.T, bin, dc, consumer, redisAddr, peer, peerAddr, prefix string, writes int) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-dc", dc, "-redis", redisAddr, "-peer", peer+"="+peerAddr,
		"-consumer", consumer, "-writes", fmt.Sprint(writes), "-prefix", prefix)
	var stderr strings.Builder // written by exec's copier until Wait returns
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: dc + "/" + prefix, cmd: cmd, done: make(chan struct{}), eof: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", p.name, stderr.String())
		}
	})
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "ack":
				a.mu.Lock()
				a.keys[f[2]] = f[1]
				a.count[p]++
				a.mu.Unlock()
			case len(f) == 1 && f[0] == "done":
				close(p.done)
			}
		}
	}()
	return p
}

// kill kills p with SIGKILL and waits until every line it printed is read.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	<-p.eof
}

// until waits for cond, failing the test past the bound with what.
func until(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	if !within(bound, cond) {
		t.Fatalf("not within %v: %s", bound, what)
	}
}

// within reports whether cond held before bound passed.
func within(bound time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Each datacenter runs as a process of its own over its own Redis. The
// origin is killed (SIGKILL) right after acknowledged writes, the receiver
// mid-stream, and the origin's redis-server is killed and restarted while
// writes go on; each process is restarted under its consumer name. In the
// end every acknowledged write is in both datacenters' caches, and no key
// differs between them.
func TestKilledProcessesLoseNothing(t *testing.T) {
	bin := build(t)
	ru, rt := testserver.StartRedis(t), testserver.StartRedis(t)
	a := &acks{keys: map[string]string{}, count: map[*proc]int{}}
	unicom := func(prefix string, n int) *proc {
		return a.run(t, bin, "unicom", "unicom", ru.Addr(), "telecom", rt.Addr(), prefix, n)
	}
	telecom := func(prefix string, n int) *proc {
		return a.run(t, bin, "telecom", "telecom", rt.Addr(), "unicom", ru.Addr(), prefix, n)
	}
	const bound = 60 * time.Second

	t1 := telecom("t1", 400)
	u1 := unicom("u1", 5000)
	until(t, bound, "unicom's first writes", func() bool { return a.of(u1) >= 300 })
	u1.kill(t) // the origin, right after acknowledged writes
	u2 := unicom("u2", 1500)
	until(t, bound, "unicom's writes after its restart", func() bool { return a.of(u2) >= 200 })
	t1.kill(t) // the receiver, mid-stream
	t2 := telecom("t2", 400)
	until(t, bound, "unicom's writes after telecom's restart", func() bool { return a.of(u2) >= 600 })
	ru.Stop() // unicom's redis-server, mid-stream: its streams come back from its append-only file
	time.Sleep(time.Second)
	ru.Start()
	a.everywhere(t, bound, map[string]string{"unicom": ru.Addr(), "telecom": rt.Addr()}, u2, t2)
}

// build builds the redisdc binary for the test.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "redisdc")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// everywhere waits until the processes running are done writing, and then
// until every acknowledged write is in the cache of every datacenter (name
// → Redis address), and no key differs between them.
func (a *acks) everywhere(t *testing.T, bound time.Duration, addrs map[string]string, running ...*proc) {
	t.Helper()
	for _, p := range running {
		select {
		case <-p.done:
		case <-time.After(bound):
			t.Fatalf("%s did not finish its writes", p.name)
		}
	}
	a.mu.Lock()
	written := a.keys
	a.mu.Unlock()
	ctx := context.Background()
	caches := map[string]*rediscache.Cache{}
	for dc, addr := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer c.Close()
		caches[dc] = rediscache.New(c, rediscache.Options{Prefix: CachePrefix})
	}
	var missing []string
	within(bound, func() bool {
		missing = missing[:0]
		for key, id := range written {
			var seen []rediscache.Entry
			for dc, c := range caches {
				e, found, err := c.GetVersioned(ctx, key)
				if err != nil || !found {
					missing = append(missing, dc+":"+key)
					continue
				}
				seen = append(seen, e)
			}
			if len(seen) == 2 && (seen[0].ID != seen[1].ID || seen[0].Version != seen[1].Version) {
				missing = append(missing, "diverged:"+key)
			} else if len(seen) == 2 && !strings.HasPrefix(key, "shared-") && seen[0].ID != id {
				missing = append(missing, "other write:"+key)
			}
		}
		if len(missing) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		return len(missing) == 0
	})
	if len(missing) > 0 {
		t.Fatalf("not within %v: %d keys missing or diverged, such as %v", bound, len(missing), missing[:min(5, len(missing))])
	}
	t.Logf("%d acknowledged keys in both datacenters", len(written))
}
