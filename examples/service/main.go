// Command service is one datacenter of a key-value service wired to dcsync:
// the program the README shows. Writes taken here (PUT /kv/{key}) go to this
// datacenter's Redis and, through dcsync over HTTP, to the peer's; reads
// (GET /kv/{key}) come from the local Redis. Run one per datacenter:
//
//	export DCSYNC_SECRET=...   # the same in both datacenters, 16 bytes or more
//	go run ./examples/service -dc unicom -listen :8080 -peer telecom=http://telecom.example:8080/dcsync \
//		-redis 10.0.1.5:6379 -elastic http://es.example:9200
//
// Every write reaches the journal in -journal before it is applied, so a
// crash (kill -9 included) loses nothing: on restart what no peer
// acknowledged is applied and shipped again. Both datacenters log to one
// Elasticsearch, where each reconciler sees the other's applies. Without
// -elastic the audit log is in memory: enough to try it. On SIGTERM it stops
// taking requests, finishes those under way, and delivers what it queued
// within 20 seconds, leaving the rest to the journal.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/journal"
	"github.com/dcsync/dcsync/processor/rediscache"
	dchttp "github.com/dcsync/dcsync/transport/http"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

type config struct {
	dc, peer, peerURL string // this datacenter, the other, its /dcsync endpoint
	secret            []byte // shared by the two datacenters
	redis             string // this datacenter's Redis: cache, leader lock, checkpoints
	elastic, index    string // the audit log's Elasticsearch ("" keeps it in memory), its index prefix
	journal           string // directory of the write-ahead journal
}

func main() {
	cfg := config{secret: []byte(os.Getenv("DCSYNC_SECRET"))}
	listen := flag.String("listen", "127.0.0.1:8080", "address of the API and of /dcsync")
	flag.StringVar(&cfg.dc, "dc", "unicom", "this datacenter")
	peer := flag.String("peer", "telecom=http://127.0.0.1:8081/dcsync", "the other datacenter: name=URL")
	flag.StringVar(&cfg.redis, "redis", "127.0.0.1:6379", "this datacenter's Redis")
	flag.StringVar(&cfg.elastic, "elastic", "", "Elasticsearch URL of the audit log")
	flag.StringVar(&cfg.index, "audit-index", "dcsync-audit", "index prefix of the audit log")
	flag.StringVar(&cfg.journal, "journal", "dcsync-journal", "directory of the write-ahead journal")
	flag.Parse()
	var ok bool
	if cfg.peer, cfg.peerURL, ok = strings.Cut(*peer, "="); !ok {
		slog.Error("service: -peer wants name=URL", "peer", *peer)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err == nil {
		slog.Info("listening", "addr", ln.Addr().String(), "dc", cfg.dc)
		err = run(ctx, ln, cfg)
	}
	if err != nil {
		slog.Error("service", "err", err)
		os.Exit(1)
	}
}

// run serves on ln until ctx ends, then shuts down within bounds.
func run(ctx context.Context, ln net.Listener, cfg config) error {
	rdb := redis.NewClient(&redis.Options{Addr: cfg.redis})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.redis, err)
	}

	var audit dcsync.AuditLog = memaudit.New(0)
	if cfg.elastic != "" {
		es, err := esaudit.New(ctx, esaudit.Config{URLs: []string{cfg.elastic}, IndexPrefix: cfg.index})
		if err != nil {
			return err
		}
		defer es.Close()
		audit = es
	}

	wal, err := journal.Open(cfg.journal, journal.Options{})
	if err != nil {
		return err
	}
	defer wal.Close()

	// Batches are signed for the peer by name: no other datacenter takes them.
	toPeer, err := dchttp.NewSender(dchttp.SenderConfig{URL: cfg.peerURL, From: cfg.dc, To: cfg.peer, Secret: cfg.secret})
	if err != nil {
		return err
	}
	peers := map[string]dcsync.Sender{cfg.peer: toPeer}
	cache := rediscache.New(rdb, rediscache.Options{Prefix: "kv:"})
	syncer, err := dcsync.New(dcsync.Config{DC: cfg.dc, Peers: peers, Processor: cache, Audit: audit, Journal: wal})
	if err != nil {
		return err
	}

	// One reconciler active per datacenter, whatever the number of
	// processes, resuming where the last pass ended.
	rec, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: cfg.dc, Peers: peers, Audit: audit,
		Lock:        dcredis.NewLock(rdb, "service:reconciler:"+cfg.dc),
		Checkpoints: dcredis.NewCheckpoints(rdb, "service:checkpoint:")})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("POST /dcsync", dchttp.NewHandler(syncer.Collector(),
		dchttp.HandlerConfig{Secrets: map[string][]byte{cfg.peer: cfg.secret}, RequireTo: true, Logger: slog.Default()}))
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, dcsync.DefaultMaxPayload))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		var opts []dcsync.WriteOption
		if r.URL.Query().Get("wait") == "all" { // return once the peer has it too
			opts = append(opts, dcsync.WaitAll())
		}
		err = syncer.Write(r.Context(), &dcsync.Request{Key: r.PathValue("key"), Op: rediscache.OpSet, Payload: value}, opts...)
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, dcsync.ErrInvalid):
			http.Error(w, err.Error(), http.StatusBadRequest)
		case errors.Is(err, dcsync.ErrNotReplicated): // applied here; the reconciler delivers it
			http.Error(w, err.Error(), http.StatusAccepted)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		value, found, err := cache.Get(r.Context(), r.PathValue("key"))
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		case !found:
			http.NotFound(w, r)
		default:
			_, _ = w.Write(value)
		}
	})
	srv := dchttp.NewServer("", mux) // timeouts that bound slow clients yet fit the largest batch

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		if err := rec.Run(ctx); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done() // a signal, or a failure above
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		// Requests under way first, then what is queued for the peer;
		// what it does not take by then stays in the journal.
		return errors.Join(srv.Shutdown(shutdown), syncer.Shutdown(shutdown))
	})
	return g.Wait()
}
