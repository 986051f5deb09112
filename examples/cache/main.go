// Command cache is a key-value service running in two datacenters, unicom
// and telecom, each with its own Redis and its own HTTP API. A write taken
// by either datacenter is applied to its Redis and replicated through
// dcsync to the other's; concurrent writes to one key converge to the same
// value in both, last writer wins (processor/rediscache).
//
//	PUT    /kv/{key}  the body becomes the value; 204
//	GET    /kv/{key}  200 with the value, or 404 when absent or deleted
//	DELETE /kv/{key}  204
//
// PUT and DELETE answer with the write's X-Request-Id, X-Version and
// X-Origin; with ?wait=all they return only once the other datacenter has
// applied the write. GET answers with the X-Version and X-Origin of the
// write it shows.
//
// Both datacenters run in this one process, linked by the memory
// transport; a deployment runs one per datacenter over transport/http or
// transport/redis, with the same Processor.
//
//	go run ./examples/cache -unicom-redis 127.0.0.1:6379 -telecom-redis 127.0.0.1:6380
//	curl -X PUT --data alice localhost:8081/kv/user:1
//	curl localhost:8082/kv/user:1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/processor/rediscache"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

var datacenters = []string{"unicom", "telecom"}

// config is where each datacenter's Redis is and where its API listens.
type config struct {
	redis  map[string]string // datacenter -> Redis host:port
	listen map[string]string // datacenter -> HTTP host:port
}

func main() {
	cfg := config{redis: map[string]string{}, listen: map[string]string{}}
	for i, dc := range datacenters {
		flag.Func(dc+"-redis", dc+"'s Redis host:port (env "+envName(dc)+"; default 127.0.0.1:"+fmt.Sprint(6379+i)+")",
			func(s string) error { cfg.redis[dc] = s; return nil })
		flag.Func(dc+"-http", dc+"'s HTTP listen address (default 127.0.0.1:"+fmt.Sprint(8081+i)+")",
			func(s string) error { cfg.listen[dc] = s; return nil })
	}
	flag.Parse()
	for i, dc := range datacenters {
		if cfg.redis[dc] == "" {
			cfg.redis[dc] = os.Getenv(envName(dc))
		}
		if cfg.redis[dc] == "" {
			cfg.redis[dc] = fmt.Sprintf("127.0.0.1:%d", 6379+i)
		}
		if cfg.listen[dc] == "" {
			cfg.listen[dc] = fmt.Sprintf("127.0.0.1:%d", 8081+i)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, func(urls map[string]string) {
		for _, dc := range datacenters {
			slog.Info("serving", "dc", dc, "url", urls[dc], "redis", cfg.redis[dc])
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cache:", err)
		os.Exit(1)
	}
}

// envName is the environment variable that names dc's Redis.
func envName(dc string) string { return "CACHE_" + strings.ToUpper(dc) + "_REDIS" }

// run serves both datacenters until ctx ends. ready receives each
// datacenter's base URL once every listener is open.
func run(ctx context.Context, cfg config, ready func(urls map[string]string)) error {
	network := memtransport.NewNetwork(1)
	audit := memaudit.New(0) // one log for both, as one Elasticsearch cluster would be
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var syncers []*dcsync.Syncer
	var clients []*redis.Client
	// Stop serving first, then the Syncers (which may still deliver to the
	// other datacenter's Redis), then the Redis clients.
	defer func() {
		cancel()
		wg.Wait()
		for _, s := range syncers {
			s.Close()
		}
		for _, c := range clients {
			c.Close()
		}
	}()

	urls := map[string]string{}
	for _, dc := range datacenters {
		peer := datacenters[0]
		if dc == peer {
			peer = datacenters[1]
		}
		client := redis.NewClient(&redis.Options{Addr: cfg.redis[dc]})
		clients = append(clients, client)
		if err := client.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("%s: redis at %s: %w", dc, cfg.redis[dc], err)
		}
		cache := rediscache.New(client, rediscache.Options{Prefix: "kv:"})
		syncer, err := dcsync.New(dcsync.Config{
			DC:        dc,
			Peers:     map[string]dcsync.Sender{peer: network.Sender(dc, peer)},
			Processor: cache,
			Audit:     audit,
		})
		if err != nil {
			return err
		}
		syncers = append(syncers, syncer)
		network.Attach(dc, syncer.Collector())

		// The reconciler delivers what the link lost, every minute.
		rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: dc, Audit: audit,
			Peers: map[string]dcsync.Sender{peer: network.Sender(dc, peer)}})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = rec.Run(ctx) // returns when ctx ends
		}()

		l, err := net.Listen("tcp", cfg.listen[dc])
		if err != nil {
			return fmt.Errorf("%s: %w", dc, err)
		}
		srv := &http.Server{Handler: (&service{syncer: syncer, cache: cache}).routes(),
			ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				slog.Error("serve", "dc", dc, "err", err)
				cancel()
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
		urls[dc] = "http://" + l.Addr().String()
	}
	ready(urls)
	<-ctx.Done()
	return nil
}
