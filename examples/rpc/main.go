// Command rpc runs one datacenter of the quickstart's pair, unicom or
// telecom, as an OS process of its own that replicates to the other over
// HTTP or gRPC. Start one process per datacenter, each pointing at the
// other:
//
//	go run ./examples/rpc -dc telecom -listen 127.0.0.1:7002 -peer 127.0.0.1:7001 -transport grpc &
//	go run ./examples/rpc -dc unicom  -listen 127.0.0.1:7001 -peer 127.0.0.1:7002 -transport grpc
//
// Each process serves its Collector, waits for the peer to be up, writes -n
// writes to keys both datacenters share, waits until its own processor
// holds every write of both, and prints
//
//	state dc=unicom applied=2000 keys=100 digest=1f0c…
//
// The digest hashes each key's winning write: the two processes print the
// same one once they have converged. Then it keeps serving its peer until
// its standard input closes or it is interrupted.
//
// The two share the secret in $DCSYNC_SECRET (a demonstration default
// otherwise); -compress gzips the batches.
//
// With -listen :0 and -peer stdin, a process prints "listening ADDR" and
// reads its peer's address from the first line of its standard input, as
// the test does.
//
// It is a self-contained program: copy it into a module of your own that
// requires github.com/dcsync/dcsync, and it runs the same.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// peerOf maps each datacenter to the other.
var peerOf = map[string]string{"unicom": "telecom", "telecom": "unicom"}

type options struct {
	dc, listen, peer, transport string
	secret                      []byte
	writes                      int
	compress                    bool
	timeout                     time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.dc, "dc", "unicom", "this datacenter: unicom or telecom")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:7001", "where this datacenter's collector listens")
	flag.StringVar(&o.peer, "peer", "127.0.0.1:7002", `the other datacenter's collector address, or "stdin"`)
	flag.StringVar(&o.transport, "transport", "http", "http or grpc")
	flag.IntVar(&o.writes, "n", 1000, "writes to make here")
	flag.BoolVar(&o.compress, "compress", false, "gzip the batches")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait for the peer and its writes")
	flag.Parse()
	o.secret = []byte(os.Getenv("DCSYNC_SECRET"))
	if len(o.secret) == 0 {
		o.secret = []byte("unicom-telecom example secret, change me")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdin io.Reader, stdout io.Writer) error {
	peer, ok := peerOf[o.dc]
	if !ok {
		return fmt.Errorf("unknown datacenter %q", o.dc)
	}
	in := bufio.NewScanner(stdin)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	if o.peer == "stdin" {
		if !in.Scan() {
			return errors.New("no peer address on standard input")
		}
		o.peer = strings.TrimSpace(in.Text())
	}

	store := newStore()
	audit := memaudit.New(0)
	tr, err := newTransport(o)
	if err != nil {
		return err
	}
	s, err := dcsync.New(dcsync.Config{
		DC:        o.dc,
		Peers:     map[string]dcsync.Sender{peer: tr.sender},
		Processor: store,
		Audit:     audit,
		// Keep trying for a while before leaving a write to the reconciler.
		Delivery: dcsync.Delivery{Backoff: dcsync.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Attempts: 10}},
	})
	if err != nil {
		return err
	}
	defer s.Close()
	stopServing := tr.serve(ln, s.Collector())
	defer stopServing()

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := tr.waitPeer(ctx); err != nil {
		return fmt.Errorf("waiting for %s at %s: %w", peer, o.peer, err)
	}
	// Write to keys both datacenters share: concurrent writes to one key
	// converge by last writer wins.
	for i := range o.writes {
		req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set", Payload: fmt.Appendf(nil, "%s-%d", o.dc, i)}
		if err := s.Write(ctx, req); err != nil {
			return err
		}
	}
	if err := s.Flush(ctx); err != nil {
		return err
	}
	if st := s.Stats(); st.ShipFailed > 0 {
		// Deliveries given up are the reconciler's. This process's audit log
		// does not see the peer's applies, so a pass re-sends every write;
		// the peer acknowledges those it has as duplicates.
		slog.Warn("deliveries given up, reconciling", "dc", o.dc, "failed", st.ShipFailed)
		r, err := dcsync.NewReconciler(dcsync.ReconcilerConfig{DC: o.dc, Peers: map[string]dcsync.Sender{peer: tr.sender},
			Audit: audit, Grace: -1})
		if err != nil {
			return err
		}
		if rep, err := r.RunOnce(ctx); err != nil || rep.Failing > 0 {
			return fmt.Errorf("reconcile: %+v, %v", rep, err)
		}
	}
	// Wait for the peer's writes.
	for store.Applied() < 2*o.writes {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d writes applied here: %w", store.Applied(), 2*o.writes, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "state dc=%s applied=%d keys=%d digest=%s\n", o.dc, store.Applied(), store.Keys(), store.Digest())
	// Serve the peer until told to stop.
	done := make(chan struct{})
	go func() {
		for in.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil
		}
		return errors.New("still serving when -timeout ran out")
	}
	return nil
}

// transport is the chosen RPC transport: the sender to the peer, and how
// to serve the Collector and see the peer up.
type transport struct {
	sender   dcsync.Sender
	serve    func(ln net.Listener, c dcsync.Collector) (stop func())
	waitPeer func(ctx context.Context) error
}

func newTransport(o options) (*transport, error) {
	peer := peerOf[o.dc]
	secrets := map[string][]byte{peer: o.secret}
	switch o.transport {
	case "http":
		url := "http://" + o.peer + "/dcsync"
		snd, err := dchttp.NewSender(dchttp.SenderConfig{URL: url, From: o.dc, To: peer, Secret: o.secret, Compress: o.compress})
		if err != nil {
			return nil, err
		}
		return &transport{sender: snd,
			serve: func(ln net.Listener, c dcsync.Collector) func() {
				mux := http.NewServeMux()
				mux.Handle("/dcsync", dchttp.NewHandler(c, dchttp.HandlerConfig{Secrets: secrets, RequireTo: true, Logger: slog.Default()}))
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = srv.Serve(ln) }()
				return func() { _ = srv.Close() }
			},
			waitPeer: func(ctx context.Context) error {
				return poll(ctx, func() error {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return err
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						return errors.New(resp.Status)
					}
					return nil
				})
			}}, nil
	case "grpc":
		snd, err := dcgrpc.NewSender(dcgrpc.SenderConfig{Target: o.peer, From: o.dc, To: peer, Secret: o.secret, Compress: o.compress})
		if err != nil {
			return nil, err
		}
		return &transport{sender: snd,
			serve: func(ln net.Listener, c dcsync.Collector) func() {
				cfg := dcgrpc.ServerConfig{Secrets: secrets, RequireTo: true, Logger: slog.Default()}
				srv := grpc.NewServer(dcgrpc.ServerOptions(cfg)...)
				if err := dcgrpc.Register(srv, c, cfg); err != nil {
					panic(err) // the config is built right here
				}
				go func() { _ = srv.Serve(ln) }()
				return srv.Stop
			},
			waitPeer: func(ctx context.Context) error {
				conn, err := grpc.NewClient(o.peer, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					return err
				}
				defer conn.Close()
				hc := healthpb.NewHealthClient(conn)
				return poll(ctx, func() error {
					resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: dcgrpc.ServiceName})
					if err != nil {
						return err
					}
					if resp.Status != healthpb.HealthCheckResponse_SERVING {
						return errors.New(resp.Status.String())
					}
					return nil
				})
			}}, nil
	}
	return nil, fmt.Errorf("unknown transport %q: http or grpc", o.transport)
}

// poll calls check until it succeeds or ctx ends.
func poll(ctx context.Context, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// store stands in for the datacenter's database: last writer wins per key,
// by (Version, Origin), so both datacenters end with the same value for
// every key whatever the order of delivery.
type store struct {
	mu      sync.Mutex
	values  map[string]*dcsync.Request // key -> winning write
	applied map[string]bool            // request IDs applied
}

func newStore() *store {
	return &store{values: map[string]*dcsync.Request{}, applied: map[string]bool{}}
}

// Process implements dcsync.Processor.
func (s *store) Process(_ context.Context, req *dcsync.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.values[req.Key]; cur == nil || req.Newer(cur.Version, cur.Origin) {
		s.values[req.Key] = req
	}
	s.applied[req.ID] = true
	return nil
}

// Applied returns how many distinct writes were applied.
func (s *store) Applied() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.applied)
}

// Keys returns how many keys hold a value.
func (s *store) Keys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

// Digest hashes every key and the ID of its winning write: two stores
// holding the same state have the same digest.
func (s *store) Digest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Sorted(maps.Keys(s.values))
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, s.values[k].ID)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
