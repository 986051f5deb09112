//go:build unix

package testserver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisCluster is a Redis Cluster of three masters, each with a replica,
// on loopback, started by scripts/redis.sh cluster-start.
type RedisCluster struct {
	t     testing.TB
	dir   string
	addrs []string
}

// StartRedisCluster starts a cluster and stops it when the test ends. The
// test fails when it cannot be started.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "dcsync-redis-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &RedisCluster{t: t, dir: dir}
	t.Cleanup(func() {
		if err := c.script(nil, "cluster-stop"); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	var out bytes.Buffer
	if err := c.script(&out, "cluster-start"); err != nil {
		t.Fatalf("start a cluster: %v", err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "export DCSYNC_REDIS_CLUSTER="); ok {
			c.addrs = strings.Split(v, ",")
		}
	}
	if len(c.addrs) != 6 {
		t.Fatalf("scripts/redis.sh cluster-start printed %q", out.String())
	}
	return c
}

// Addrs returns the addresses of the cluster's nodes.
func (c *RedisCluster) Addrs() []string { return c.addrs }

// Kill kills the node at addr with SIGKILL, as a crash would.
func (c *RedisCluster) Kill(addr string) {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, port(addr), "pid"))
	if err != nil {
		c.t.Fatalf("pid of %s: %v", addr, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		c.t.Fatalf("pid of %s: %v", addr, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", addr, err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the node at addr again, with its data: it rejoins the
// cluster, as a replica when its replica took over.
func (c *RedisCluster) Restart(addr string) {
	c.t.Helper()
	if err := c.script(nil, "cluster-restart", port(addr)); err != nil {
		c.t.Fatalf("restart %s: %v", addr, err)
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// script runs scripts/redis.sh with args on the cluster's directory.
func (c *RedisCluster) script(out *bytes.Buffer, args ...string) error {
	script, err := repoFile("scripts/redis.sh")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "DCSYNC_REDIS_CLUSTER_RUN="+c.dir)
	if out != nil {
		cmd.Stdout = out
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/redis.sh %s: %w\n%s", args[0], err, stderr.String())
	}
	return nil
}
