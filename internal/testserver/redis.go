// Package testserver starts real servers for tests: redis-server processes
// on free loopback ports, each in a temporary directory, stopped when the
// test ends. The binary comes from PATH or DCSYNC_REDIS_SERVER;
// scripts/redis.sh installs it from Debian's package.
package testserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Redis is one redis-server process.
type Redis struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server on a free loopback port with
// append-only persistence, and stops it when the test ends. The test fails
// when redis-server cannot be found or started.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, dir: t.TempDir(), port: freePort(t)}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Addr returns host:port of the server.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Start starts the server again after Stop, on the same port and data.
func (r *Redis) Start() {
	r.t.Helper()
	bin := os.Getenv("DCSYNC_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			r.t.Fatalf("redis-server not found (scripts/redis.sh installs it): %v", err)
		}
	}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "no", "--save", "",
		// No AOF rewrite child, which could outlive a Stop and write into the
		// temporary directory while the test removes it.
		"--auto-aof-rewrite-percentage", "0",
		"--protected-mode", "no", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.Addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s did not come up: %v\n%s", r.Addr(), err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server, as a crash would; Start brings it back.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String describes the server for test logs.
func (r *Redis) String() string { return fmt.Sprintf("redis-server at %s", r.Addr()) }
