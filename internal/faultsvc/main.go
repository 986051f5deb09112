// Command faultsvc is one datacenter of the fault suite: a small service
// that runs a Syncer with a journal over HTTP or gRPC, as its own OS
// process, so the suite can kill -9 it and start it again. Its state (the
// store its Processor applies to) lives in a file and survives the kill,
// as a database would.
//
// It takes its two listeners from its parent as inherited file
// descriptors, the collector's as fd 3 and the control endpoint's as fd 4,
// so a restarted process serves at the same addresses with no port race.
// The control endpoint serves:
//
//	POST /write?n=N&prefix=P  makes N writes one after another and streams
//	                          the ID of each as soon as Write returned nil
//	GET  /state               {"applied": [IDs], "digest": "...", "shipFailed": N}
//
// With -elastic it logs its audit records to that Elasticsearch under
// -index-prefix, spooling them in its directory while Elasticsearch is
// unreachable; otherwise to memory.
//
// It logs "ready" to stderr once serving.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/journal"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
	dchttp "github.com/dcsync/dcsync/transport/http"
	"github.com/dcsync/dcsync/transport/transporttest"
)

var secret = []byte("faultsvc shared secret, for tests only")

func main() {
	var (
		dc, peer, peerAddr, transport, dir, sync string
		es, indexPrefix                          string
	)
	flag.StringVar(&dc, "dc", "", "this datacenter")
	flag.StringVar(&peer, "peer", "", "the other datacenter")
	flag.StringVar(&peerAddr, "peer-addr", "", "the other datacenter's collector address")
	flag.StringVar(&transport, "transport", "http", "http or grpc")
	flag.StringVar(&dir, "dir", "", "where the journal and the state live")
	flag.StringVar(&sync, "sync", "interval", "journal fsync policy: always, interval or never")
	flag.StringVar(&es, "elastic", "", "Elasticsearch URL of the audit log; empty for a memory log")
	flag.StringVar(&indexPrefix, "index-prefix", "", "the audit log's index prefix in Elasticsearch")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	audit, err := openAudit(ctx, es, indexPrefix, dir)
	if err == nil {
		err = run(ctx, dc, peer, peerAddr, transport, dir, sync, audit)
		audit.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultsvc:", err)
		os.Exit(1)
	}
}

// auditLog is the log of a faultsvc: elastic's or memory's.
type auditLog interface {
	dcsync.AuditLog
	Close() error
}

// memoryLog is a memory log that needs no closing.
type memoryLog struct{ *memaudit.Log }

func (memoryLog) Close() error { return nil }

// openAudit opens the audit log: in Elasticsearch at url, spooling under
// dir, or in memory when url is empty. Outages are noticed and their ends
// replayed within a fraction of a second, for the fault suite.
func openAudit(ctx context.Context, url, prefix, dir string) (auditLog, error) {
	if url == "" {
		return memoryLog{memaudit.New(0)}, nil
	}
	return esaudit.New(ctx, esaudit.Config{URLs: []string{url}, IndexPrefix: prefix,
		SpoolDir: dir + "/spool", FlushInterval: 50 * time.Millisecond, Retries: 1,
		RetryWait: 10 * time.Millisecond, ReplayInterval: 100 * time.Millisecond, Timeout: 5 * time.Second})
}

func run(ctx context.Context, dc, peer, peerAddr, transport, dir, syncPolicy string, audit dcsync.AuditLog) error {
	collectorLn, err := net.FileListener(os.NewFile(3, "collector"))
	if err != nil {
		return fmt.Errorf("collector listener: %w", err)
	}
	controlLn, err := net.FileListener(os.NewFile(4, "control"))
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}
	store, err := openStore(dir + "/state")
	if err != nil {
		return err
	}
	policy, err := journal.ParseSyncPolicy(syncPolicy)
	if err != nil {
		return err
	}
	j, err := journal.Open(dir+"/journal", journal.Options{Sync: policy})
	if err != nil {
		return err
	}
	defer j.Close()
	var sender dcsync.Sender
	var serve func(c dcsync.Collector) (stop func())
	secrets := map[string][]byte{peer: secret}
	switch transport {
	case "http":
		sender, err = dchttp.NewSender(dchttp.SenderConfig{URL: "http://" + peerAddr + "/dcsync", From: dc, Secret: secret})
		serve = func(c dcsync.Collector) func() {
			srv := &http.Server{Handler: dchttp.NewHandler(c, dchttp.HandlerConfig{Secrets: secrets}),
				ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(collectorLn) }()
			return func() { _ = srv.Close() }
		}
	case "grpc":
		sender, err = dcgrpc.NewSender(dcgrpc.SenderConfig{Target: peerAddr, From: dc, Secret: secret})
		serve = func(c dcsync.Collector) func() {
			cfg := dcgrpc.ServerConfig{Secrets: secrets}
			srv := grpc.NewServer(dcgrpc.ServerOptions(cfg)...)
			if err := dcgrpc.Register(srv, c, cfg); err != nil {
				panic(err)
			}
			go func() { _ = srv.Serve(collectorLn) }()
			return srv.Stop
		}
	default:
		return fmt.Errorf("unknown transport %q", transport)
	}
	if err != nil {
		return err
	}
	peers := map[string]dcsync.Sender{peer: sender}
	backoff := dcsync.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 4}
	// What the senders give up while the peer is down, the journal queues
	// again every second: no reconciler is needed.
	s, err := dcsync.New(dcsync.Config{DC: dc, Peers: peers, Processor: store, Audit: audit, Journal: j,
		JournalRedrive: time.Second, Delivery: dcsync.Delivery{Backoff: backoff, Timeout: 500 * time.Millisecond}})
	if err != nil {
		return err
	}
	stopServing := serve(s.Collector())
	defer stopServing()
	ctl := &http.Server{Handler: control(s, store), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ctl.Serve(controlLn) }()
	slog.Info("ready", "dc", dc, "transport", transport)
	<-ctx.Done()
	_ = ctl.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

func control(s *dcsync.Syncer, store *fileStore) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("n"))
		prefix := r.FormValue("prefix")
		flusher := w.(http.Flusher)
		for i := range n {
			req := &dcsync.Request{Key: fmt.Sprintf("k%d", i%50), Op: "set", Payload: []byte(prefix)}
			if err := s.Write(r.Context(), req); err != nil {
				fmt.Fprintf(w, "error %v\n", err)
				return
			}
			fmt.Fprintf(w, "%s\n", req.ID)
			flusher.Flush()
		}
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"applied": store.ids(), "digest": store.Digest(),
			"shipFailed": s.Stats().ShipFailed})
	})
	return mux
}

// fileStore is transporttest.Store kept in a file: every applied write is appended
// to it before Process returns, and read back on start.
type fileStore struct {
	*transporttest.Store
	mu      sync.Mutex
	f       *os.File
	applied map[string]bool
}

func openStore(path string) (*fileStore, error) {
	s := &fileStore{Store: transporttest.NewStore(), applied: map[string]bool{}}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 4 {
				continue // torn by a kill
			}
			v, err := strconv.ParseUint(fs[3], 10, 64)
			if err != nil {
				continue
			}
			req := &dcsync.Request{ID: fs[0], Origin: fs[1], Key: fs[2], Version: v}
			_ = s.Store.Process(context.Background(), req)
			s.applied[req.ID] = true
		}
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s.f = f
	return s, nil
}

// Process applies req and appends it to the file.
func (s *fileStore) Process(ctx context.Context, req *dcsync.Request) error {
	if err := s.Store.Process(ctx, req); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied[req.ID] {
		return nil
	}
	if _, err := fmt.Fprintf(s.f, "%s %s %s %d\n", req.ID, req.Origin, req.Key, req.Version); err != nil {
		return err
	}
	s.applied[req.ID] = true
	return nil
}

func (s *fileStore) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.applied))
	for id := range s.applied {
		out = append(out, id)
	}
	return out
}
