// Command redisdc runs one datacenter of dcsync's Redis Streams wiring
// (transport/redis) as a process of its own, applying writes to a
// processor/rediscache Cache in the datacenter's own Redis, so that its
// state outlives the process. The separate-process fault test builds it,
// kills its processes with SIGKILL and restarts them and their Redis.
//
//	redisdc -dc unicom -redis 127.0.0.1:6390 -peer telecom=127.0.0.1:6391 -consumer u -writes 1000 -prefix a
//
// It prints "ready" once its workers run, "ack <id> <key>" for every write
// its Syncer acknowledged, and "done" after -writes writes; then it goes
// on moving entries until SIGTERM or SIGINT. Every tenth write goes to one
// of a few keys the datacenters share, so that their writes conflict. A
// Write that fails is tried again as a new write.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/processor/rediscache"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// CachePrefix starts the keys of the Cache that redisdc applies writes to.
const CachePrefix = "cache:"

func main() {
	var (
		dc, addr, consumer, prefix string
		writes                     int
		peers                      = map[string]string{}
	)
	flag.StringVar(&dc, "dc", "", "this datacenter's name")
	flag.StringVar(&addr, "redis", "", "this datacenter's Redis host:port")
	flag.Func("peer", "a peer datacenter as name=host:port (repeatable)", func(s string) error {
		name, a, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want name=host:port, got %q", s)
		}
		peers[name] = a
		return nil
	})
	flag.StringVar(&consumer, "consumer", "", "the consumer name of this process: a restarted process takes its predecessor's")
	flag.IntVar(&writes, "writes", 0, "how many writes to make")
	flag.StringVar(&prefix, "prefix", "w", "what the keys of this process's own writes start with")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, dc, addr, consumer, prefix, writes, peers); err != nil {
		fmt.Fprintln(os.Stderr, "redisdc:", err)
		os.Exit(1)
	}
}

func newClient(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
}

func run(ctx context.Context, dc, addr, consumer, prefix string, writes int, peers map[string]string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	local := newClient(addr)
	defer local.Close()
	remotes := map[string]goredis.UniversalClient{}
	for name, a := range peers {
		c := newClient(a)
		defer c.Close()
		remotes[name] = c
	}
	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: dc, Client: local, Peers: remotes, Consumer: consumer,
		Block: 100 * time.Millisecond, ClaimIdle: 3 * time.Second, TrimInterval: 200 * time.Millisecond,
		Backoff: dcsync.Backoff{Initial: 5 * time.Millisecond, Max: 200 * time.Millisecond}, Logger: logger})
	if err != nil {
		return err
	}
	syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: rediscache.New(local, rediscache.Options{Prefix: CachePrefix}),
		Logger: logger}))
	if err != nil {
		return err
	}
	defer syncer.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- node.Run(runCtx, syncer) }()
	defer func() { cancel(); <-done }()

	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	say("ready")
	for i := 0; i < writes && ctx.Err() == nil; {
		key := fmt.Sprintf("%s-%d", prefix, i)
		if i%10 == 0 {
			key = fmt.Sprintf("shared-%d", i/10%5)
		}
		req := &dcsync.Request{Key: key, Op: rediscache.OpSet, Payload: []byte(dc + ":" + key)}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		err := syncer.Write(wctx, req)
		wcancel()
		if err != nil {
			time.Sleep(20 * time.Millisecond) // its Redis is away: try again
			continue
		}
		say("ack %s %s", req.ID, key)
		i++
	}
	if ctx.Err() == nil {
		say("done")
	}
	<-ctx.Done()
	return nil
}
