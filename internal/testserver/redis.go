// Package testserver starts real servers for tests: redis-server processes
// on free loopback ports, each in a temporary directory, stopped when the
// test ends. The binary comes from PATH or DCSYNC_REDIS_SERVER;
// scripts/redis.sh installs it from Debian's package.
package testserver

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
		dir, err := serverDir(r.Addr())
		if err == nil {
			if dir != r.dir {
				// Another run's server took the port while this one was
				// stopped: a test would talk to a stranger.
				r.t.Fatalf("port %d is held by another redis-server (dir %s)", r.port, dir)
			}
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

// serverDir asks the redis-server at addr for its directory, with plain
// RESP, so that Start knows the server answering is its own.
func serverDir(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n")); err != nil {
		return "", err
	}
	// *2 $3 dir $<n> <dir>: the last line holds the directory.
	rd := bufio.NewReader(c)
	var last string
	for range 5 {
		line, err := rd.ReadString('\n')
		if err != nil {
			return "", err
		}
		last = strings.TrimRight(line, "\r\n")
	}
	return last, nil
}

// freePort picks a free loopback port below the kernel's ephemeral range
// (32768 and up on Linux), so that no outgoing connection nor another
// run's "port 0" listener takes it while the server is stopped and
// restarted on it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port in 20000..31999")
	return 0
}

// String describes the server for test logs.
func (r *Redis) String() string { return fmt.Sprintf("redis-server at %s", r.Addr()) }
