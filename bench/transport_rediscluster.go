package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dcsync/dcsync"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// redisClusterWiring is the MQ wiring with both datacenters' streams on one
// Redis Cluster of three masters, each with a replica, started by
// scripts/redis.sh cluster-start (append-only, fsync every second). Each
// datacenter's keys share a hash slot; with Replicas 1 a Write returns, and
// the reship hop acknowledges, only once a replica has the entry (WAIT), so
// that a failover loses nothing: the cost of that guarantee shows here.
type redisClusterWiring struct {
	run     string // the cluster's directory, once started
	addrs   []string
	clients map[string]*goredis.ClusterClient
	nodeRunner
}

// needRedisCluster is the needs of the Redis Cluster targets.
func needRedisCluster(cfg *Config) string {
	if msg := needRedis(cfg); msg != "" {
		return msg
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return "redis-cli not found (scripts/redis.sh installs it)"
	}
	return ""
}

// clusterScript runs scripts/redis.sh (bench runs in bench/) on dir.
func clusterScript(ctx context.Context, dir string, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("..", "scripts", "redis.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "DCSYNC_REDIS_CLUSTER_RUN="+dir)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/redis.sh %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// cluster starts the phase's cluster on first use and accounts for its
// servers in the phase.
func (w *redisClusterWiring) cluster(ctx context.Context, e *env) error {
	if w.run != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "dcsync-bench-redis-cluster-")
	if err != nil {
		return err
	}
	w.run = dir
	e.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = clusterScript(sctx, dir, io.Discard, "cluster-stop")
	})
	var out bytes.Buffer
	if err := clusterScript(ctx, dir, &out, "cluster-start"); err != nil {
		return err
	}
	for line := range strings.Lines(out.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export DCSYNC_REDIS_CLUSTER="); ok {
			w.addrs = strings.Split(v, ",")
		}
	}
	for _, addr := range w.addrs {
		b, err := os.ReadFile(filepath.Join(dir, addr[strings.LastIndexByte(addr, ':')+1:], "pid"))
		if err != nil {
			return err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return err
		}
		srv := &redisServer{addr: addr, admin: goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 1, MaxRetries: -1})}
		e.onClose(func() { srv.admin.Close() })
		e.addProcess(process{name: "redis-server", pid: pid, wire: srv.wireBytes})
	}
	return nil
}

func (w *redisClusterWiring) client(e *env, dc string) *goredis.ClusterClient {
	if c := w.clients[dc]; c != nil {
		return c
	}
	if w.clients == nil {
		w.clients, w.nodes = map[string]*goredis.ClusterClient{}, map[string]*dcredis.Node{}
	}
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: w.addrs,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}) // see docs/redis.md
	e.onClose(func() { c.Close() })
	w.clients[dc] = c
	return c
}

func (w *redisClusterWiring) config(ctx context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	if err := w.cluster(ctx, e); err != nil {
		return cfg, err
	}
	own, remote := w.client(e, cfg.DC), w.client(e, other)
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: cfg.DC, Client: own,
		Peers: map[string]goredis.UniversalClient{other: remote}, Replicas: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return cfg, err
	}
	w.nodes[cfg.DC] = node
	return node.Wire(cfg), nil
}
