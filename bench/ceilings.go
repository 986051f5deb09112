package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// The ceilings do a phase's work with nothing of dcsync but its batch
// bytes: what the machine and the protocol allow, which no transport can
// beat.
var (
	xaddCeiling = target{name: "ceiling/redis-xadd", kind: kindCeiling, transport: "redis",
		needs: func(cfg *Config) string {
			if cfg.RedisBenchmark == "" {
				return "redis-benchmark not found (scripts/redis.sh installs it)"
			}
			return needRedis(cfg)
		},
		start: startXADDCeiling}
	httpCeiling = target{name: "ceiling/nethttp", kind: kindCeiling, transport: "http", needs: none,
		start: startHTTPCeiling}
	grpcCeiling = target{name: "ceiling/grpc", kind: kindCeiling, transport: "grpc", needs: none,
		start: startGRPCCeiling}
)

// defaultBatchSize is dcsync's default Delivery.BatchSize.
const defaultBatchSize = 256

// batchBody returns the body dcsync's RPC transports send for a full batch
// of the run's writes: the protobuf Batch of internal/wire, uncompressed,
// and how many writes it holds.
func batchBody(cfg *Config) ([]byte, int, error) {
	size := or(cfg.BatchSize, defaultBatchSize)
	tr := newTracker(size)
	reqs := make([]*dcsync.Request, size)
	for i := range reqs {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, 0, err
		}
		reqs[i] = &dcsync.Request{ID: id.String(), Origin: origin, Key: "k" + strconv.Itoa(i),
			Op: "set", Payload: tr.payload(i, cfg.Payload), Version: uint64(i + 1)}
	}
	body, err := wire.Encode(nil, reqs, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	return body, size, err
}

// batches calls send for each of the batches that hold n writes, from
// inflight goroutines, counting the writes sent in done.
func batches(ctx context.Context, n, size, inflight int, done *atomic.Int64, send func() error) error {
	count := (n + size - 1) / size
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range inflight {
		wg.Go(func() {
			for b := int(next.Add(1) - 1); b < count && ctx.Err() == nil; b = int(next.Add(1) - 1) {
				if err := send(); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				done.Add(int64(min(size, n-b*size)))
			}
		})
	}
	wg.Wait()
	return cmp.Or(first, ctx.Err())
}

// libraryWorkers is dcsync's default Delivery.Workers.
const libraryWorkers = 2

// httpCeilingSystem posts dcsync-sized batches to a handler that reads the
// body and answers 204, with as many batches in flight as dcsync's
// Delivery.Workers.
type httpCeilingSystem struct {
	url      string
	client   *http.Client
	body     []byte
	size     int
	inflight int
}

// ceilingSetup returns what both RPC ceilings start from: the body of a
// dcsync batch, the writes it holds, and a loopback listener.
func ceilingSetup(cfg *Config) (body []byte, size int, l net.Listener, err error) {
	if body, size, err = batchBody(cfg); err != nil {
		return nil, 0, nil, err
	}
	l, err = net.Listen("tcp", "127.0.0.1:0")
	return body, size, l, err
}

func startHTTPCeiling(_ context.Context, e *env) (system, error) {
	body, size, l, err := ceilingSetup(e.cfg)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(e.wire.listener(l)) // returns when the phase ends and closes it
	e.onClose(func() { srv.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	e.onClose(tr.CloseIdleConnections)
	return &httpCeilingSystem{url: "http://" + l.Addr().String() + "/", client: &http.Client{Transport: tr},
		body: body, size: size, inflight: or(e.cfg.Workers, libraryWorkers)}, nil
}

func (h *httpCeilingSystem) drive(ctx context.Context, n int, done *atomic.Int64) (float64, error) {
	return 0, batches(ctx, n, h.size, h.inflight, done, func() error {
		return post(ctx, h.client, h.url, "application/x-protobuf", h.body)
	})
}

// post posts body to url and expects 204 No Content.
func post(ctx context.Context, client *http.Client, url, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST to %s answered %s", url, resp.Status)
	}
	return nil
}

func (h *httpCeilingSystem) close() error { return nil }

// sinkService is a client-streaming RPC that receives messages of bytes
// and drops them, answering once at the end of the stream.
var sinkService = grpc.ServiceDesc{
	ServiceName: "dcsyncbench.Sink",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{StreamName: "Receive", ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			var m wrapperspb.BytesValue
			for {
				err := stream.RecvMsg(&m)
				if errors.Is(err, io.EOF) {
					return stream.SendMsg(&wrapperspb.BytesValue{})
				}
				if err != nil {
					return err
				}
			}
		}}},
}

// grpcCeilingSystem streams dcsync-sized batches on one stream, as the gRPC
// transport does, to the sink, without waiting for answers.
type grpcCeilingSystem struct {
	conn *grpc.ClientConn
	body []byte
	size int
}

func startGRPCCeiling(_ context.Context, e *env) (system, error) {
	body, size, l, err := ceilingSetup(e.cfg)
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	srv.RegisterService(&sinkService, struct{}{})
	go srv.Serve(e.wire.listener(l)) // returns when the phase ends and stops it
	e.onClose(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &grpcCeilingSystem{conn: conn, body: body, size: size}, nil
}

func (g *grpcCeilingSystem) drive(ctx context.Context, n int, done *atomic.Int64) (float64, error) {
	stream, err := g.conn.NewStream(ctx, &sinkService.Streams[0], "/dcsyncbench.Sink/Receive")
	if err != nil {
		return 0, err
	}
	msg := &wrapperspb.BytesValue{Value: g.body}
	if err := batches(ctx, n, g.size, 1, done, func() error { return stream.SendMsg(msg) }); err != nil {
		return 0, err
	}
	if err := stream.CloseSend(); err != nil {
		return 0, err
	}
	return 0, stream.RecvMsg(&wrapperspb.BytesValue{})
}

func (g *grpcCeilingSystem) close() error { return g.conn.Close() }

// xaddSystem runs redis-benchmark's pipelined XADD of the payload against a
// fresh redis-server: -P 64 with its default 50 clients.
type xaddSystem struct {
	srv *redisServer
	cfg *Config
}

func startXADDCeiling(ctx context.Context, e *env) (system, error) {
	srv, err := e.startRedis(ctx)
	if err != nil {
		return nil, err
	}
	return &xaddSystem{srv: srv, cfg: e.cfg}, nil
}

// drive returns redis-benchmark's own requests/s, which leaves out its
// start-up.
func (x *xaddSystem) drive(ctx context.Context, n int, done *atomic.Int64) (float64, error) {
	host, port, _ := strings.Cut(x.srv.addr, ":")
	out, err := exec.CommandContext(ctx, x.cfg.RedisBenchmark, "-h", host, "-p", port, "-P", "64",
		"-n", strconv.Itoa(n), "--csv", "XADD", "dcsync-bench", "*", "f", strings.Repeat("x", x.cfg.Payload)).Output()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %w", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 || len(rows[1]) < 2 {
		return 0, fmt.Errorf("redis-benchmark printed %q", out)
	}
	rps, err := strconv.ParseFloat(rows[1][1], 64)
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark printed %q", out)
	}
	done.Store(int64(n))
	return rps, nil
}

func (x *xaddSystem) close() error { return nil }
