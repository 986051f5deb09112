package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// lookPath returns the binary named by the environment variable, or name
// found on PATH, or "" when there is neither.
func lookPath(envVar, name string) string {
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// needRedis is the needs of the targets that run redis-server.
func needRedis(cfg *Config) string {
	if cfg.RedisServer == "" {
		return "redis-server not found (scripts/redis.sh installs it)"
	}
	return ""
}

// redisServer is a redis-server process of one phase.
type redisServer struct {
	addr   string
	cmd    *exec.Cmd
	admin  *goredis.Client // for INFO
	stopFn func()
}

// stop kills the server and removes its data.
func (r *redisServer) stop() { r.stopFn() }

// startRedis starts a redis-server on a free loopback port with the
// persistence a production server would have (append-only file, fsync every
// second), accounts for it in the phase, and stops it when the phase ends.
func (e *env) startRedis(ctx context.Context) (*redisServer, error) {
	var last error
	for range 3 { // a free port may be taken before the server binds it
		r, err := launchRedis(ctx, e.cfg.RedisServer, e.cfg.RedisRewriteMinSize)
		if err == nil {
			e.onClose(r.stop)
			e.addProcess(process{name: "redis-server", pid: r.cmd.Process.Pid, wire: r.wireBytes, rewrites: r.rewrites})
			return r, nil
		}
		last = err
	}
	return nil, last
}

func launchRedis(ctx context.Context, bin, rewriteMinSize string) (*redisServer, error) {
	dir, err := os.MkdirTemp("", "dcsync-bench-redis-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "no",
		"--logfile", filepath.Join(dir, "redis.log")}
	if rewriteMinSize != "" {
		args = append(args, "--auto-aof-rewrite-min-size", rewriteMinSize)
	}
	r.cmd = exec.Command(bin, args...)
	if err := r.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); os.RemoveAll(dir); close(exited) }() // gone once stopped
	stopped := func() {
		_ = r.cmd.Process.Kill()
		<-exited
	}
	// Wait for the port with plain dials: go-redis logs every failed one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server on %s exited: %s", r.addr, strings.TrimSpace(string(log)))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopped()
			return nil, fmt.Errorf("redis-server on %s did not come up: %w", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.admin = goredis.NewClient(&goredis.Options{Addr: r.addr, PoolSize: 1, MaxRetries: -1})
	r.stopFn = func() { r.admin.Close(); stopped() }
	return r, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// wireBytes returns the bytes redis-server has read and written on its
// connections, 0 when it cannot say.
func (r *redisServer) wireBytes() int64 {
	return r.info("stats", "total_net_input_bytes", "total_net_output_bytes")
}

// rewrites returns how many times redis-server has rewritten its
// append-only file, the one under way included, 0 when it cannot say.
func (r *redisServer) rewrites() int64 {
	return r.info("persistence", "aof_rewrites", "aof_rewrite_in_progress")
}

// info returns the sum of the fields of an INFO section, 0 when the
// server does not answer.
func (r *redisServer) info(section string, fields ...string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := r.admin.Info(ctx, section).Result()
	if err != nil {
		return 0
	}
	var n int64
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if slices.Contains(fields, k) {
			b, _ := strconv.ParseInt(v, 10, 64)
			n += b
		}
	}
	return n
}

// client returns a go-redis client of the server with the given options
// filled in, closed when the phase ends.
func (r *redisServer) client(e *env, opt goredis.Options) *goredis.Client {
	opt.Addr = r.addr
	c := goredis.NewClient(&opt)
	e.onClose(func() { c.Close() })
	return c
}

// elasticProcess finds the pid of the Elasticsearch node at url that
// scripts/elastic.sh started, for CPU accounting: its pid file is in
// $DCSYNC_ELASTIC_RUN, or else /tmp/dcsync-elastic-PORT.
func elasticProcess(url string) (int, error) {
	run := os.Getenv("DCSYNC_ELASTIC_RUN")
	if run == "" {
		_, port, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://"), ":")
		if !ok {
			return 0, errors.New("no port in the Elasticsearch URL")
		}
		run = "/tmp/dcsync-elastic-" + strings.TrimRight(port, "/")
	}
	b, err := os.ReadFile(filepath.Join(run, "pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0, errors.New("elasticsearch process not running")
	}
	return pid, nil
}
