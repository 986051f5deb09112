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
package main

import (
	"bufio"
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
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/demo"
	dcsyncgrpc "github.com/dcsync/dcsync/transport/grpc"
	dcsynchttp "github.com/dcsync/dcsync/transport/http"
)

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
	if !slices.Contains(demo.Datacenters, o.dc) {
		return fmt.Errorf("unknown datacenter %q", o.dc)
	}
	peer := demo.Other(o.dc)
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

	store := demo.NewStore(o.dc, 0)
	audit := auditmem.New(0)
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
	if err := demo.Write(ctx, s, o.dc, o.writes); err != nil {
		return err
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
	peer := demo.Other(o.dc)
	secrets := map[string][]byte{peer: o.secret}
	switch o.transport {
	case "http":
		url := "http://" + o.peer + "/dcsync"
		snd, err := dcsynchttp.NewSender(dcsynchttp.SenderConfig{URL: url, From: o.dc, Secret: o.secret, Compress: o.compress})
		if err != nil {
			return nil, err
		}
		return &transport{sender: snd,
			serve: func(ln net.Listener, c dcsync.Collector) func() {
				mux := http.NewServeMux()
				mux.Handle("/dcsync", dcsynchttp.NewHandler(c, dcsynchttp.HandlerConfig{Secrets: secrets, Logger: slog.Default()}))
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
		snd, err := dcsyncgrpc.NewSender(dcsyncgrpc.SenderConfig{Target: o.peer, From: o.dc, Secret: o.secret, Compress: o.compress})
		if err != nil {
			return nil, err
		}
		return &transport{sender: snd,
			serve: func(ln net.Listener, c dcsync.Collector) func() {
				cfg := dcsyncgrpc.ServerConfig{Secrets: secrets, Logger: slog.Default()}
				srv := grpc.NewServer(dcsyncgrpc.ServerOptions(cfg)...)
				if err := dcsyncgrpc.Register(srv, c, cfg); err != nil {
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
					resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: dcsyncgrpc.ServiceName})
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
