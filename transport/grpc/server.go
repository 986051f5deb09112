package grpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiregrpc"
)

// ServerConfig configures Register. Secrets is required; the zero value of
// every other field selects its default.
type ServerConfig struct {
	// Secrets holds the secret shared with each peer, by datacenter name;
	// each at least 16 bytes. Batches from other names are refused.
	Secrets map[string][]byte
	// MaxBody bounds a batch's body in bytes, as received and after
	// decompression; default 4 MiB. The grpc.Server's MaxRecvMsgSize
	// (default 4 MiB) bounds the whole message before it is read: see
	// ServerOptions.
	MaxBody int
	// MaxBatch bounds the requests of a batch; default
	// dcsync.DefaultMaxBatch.
	MaxBatch int
	// MaxSkew is how far a batch's timestamp may be from this clock;
	// default 5 minutes.
	MaxSkew time.Duration
	// ReplayCache is how many batch nonces are remembered to refuse
	// replays; default 1<<18.
	ReplayCache int
	// Workers is how many batches of one stream are collected at once;
	// default 1, which applies a sender's batches in the order sent.
	Workers int
	// Logger receives a warning for each batch refused as a whole (bad
	// signature, unknown datacenter, malformed...); nil logs nothing.
	Logger *slog.Logger
	// Health receives the serving status of the service. Nil registers a
	// new health service on the server; set it when the host registers
	// its own.
	Health *health.Server
}

// ServerOptions returns the options a grpc.Server serving cfg needs: a
// receive limit that admits a body of MaxBody and its envelope, no more;
// flow-control windows that let several batches be in flight; and a
// keepalive policy that lets Senders ping every 30 seconds (gRPC's default
// policy answers that with GOAWAY "too_many_pings").
func ServerOptions(cfg ServerConfig) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsg(cfg.MaxBody)),
		grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2})}
}

// keepaliveTime is how often a Sender pings an idle connection, to find a
// dead peer before a batch waits on it.
const keepaliveTime = 30 * time.Second

// window is the flow-control window of streams and connections, in bytes.
const window = 8 << 20

// maxMsg is the message size that holds a body of maxBody bytes.
func maxMsg(maxBody int) int {
	if maxBody <= 0 {
		maxBody = wire.DefaultMaxBody
	}
	return maxBody + 4096
}

// Register serves c on s as the replication service and reports it
// serving on the health service. Call it before s.Serve.
func Register(s *grpc.Server, c dcsync.Collector, cfg ServerConfig) error {
	ep, err := wire.NewEndpoint(c, wire.EndpointConfig{Secrets: cfg.Secrets, MaxBody: cfg.MaxBody, MaxBatch: cfg.MaxBatch,
		MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache, Log: cfg.Logger})
	if err != nil {
		return fmt.Errorf("dcsync/transport/grpc: %w", err)
	}
	wiregrpc.RegisterReplicationServer(s, &server{ep: ep, workers: max(cfg.Workers, 1)})
	hs := cfg.Health
	if hs == nil {
		hs = health.NewServer()
		healthpb.RegisterHealthServer(s, hs)
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	hs.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	return nil
}

type server struct {
	wiregrpc.UnimplementedReplicationServer
	ep      *wire.Endpoint
	workers int
}

// Collect serves one stream. A receiving goroutine authenticates and
// decodes each Envelope while the previous batch is being collected; the
// batches are collected in order (or Workers at a time) and each is
// answered with its Results.
func (s *server) Collect(stream wiregrpc.Replication_CollectServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		sendMu sync.Mutex
		mu     sync.Mutex
		final  error // the status ending the stream
	)
	fail := func(err error) {
		mu.Lock()
		if final == nil {
			final = err
		}
		mu.Unlock()
		cancel()
	}
	remote := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	reply := func(seq uint64, from string, res *wire.Results) {
		s.ep.Refused(remote, from, res)
		sendMu.Lock()
		defer sendMu.Unlock()
		if code, isFinal := codeOf(res.Code); isFinal {
			stream.SetTrailer(metadata.Pairs(seqTrailer, strconv.FormatUint(seq, 10)))
			fail(status.Error(code, res.Message))
			return
		}
		res.Seq = seq
		if err := stream.Send(res); err != nil {
			fail(err)
		}
	}
	// Receiving runs apart, so that a final failure ends the stream at
	// once, without waiting for the sender's next batch.
	opened := make(chan *batch, s.workers)
	go func() {
		defer close(opened)
		for {
			env, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fail(err)
				}
				return
			}
			b := s.open(env)
			select {
			case opened <- b:
			case <-ctx.Done():
				return
			}
			if b.res != nil {
				if _, isFinal := codeOf(b.res.Code); isFinal {
					return // the stream ends with this batch
				}
			}
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.workers)
	for {
		var b *batch
		select {
		case b = <-opened:
		case <-ctx.Done():
		}
		if b == nil || ctx.Err() != nil {
			break
		}
		if b.res != nil {
			reply(b.seq, b.from, b.res)
			continue
		}
		if s.workers == 1 { // in order, on this goroutine
			reply(b.seq, b.from, s.collect(ctx, b))
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			reply(b.seq, b.from, s.collect(ctx, b))
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return final
}

// batch is an Envelope authenticated and decoded, or refused.
type batch struct {
	seq      uint64
	from     string
	deadline int64 // Unix nanoseconds, 0 for none
	reqs     []*dcsync.Request
	res      *wire.Results // set when refused
}

// open authenticates and decodes env.
func (s *server) open(env *wire.Envelope) *batch {
	b := &batch{seq: env.Seq, from: env.From, deadline: env.Deadline}
	if len(env.Nonce) != auth.NonceSize || len(env.Signature) != auth.SignatureSize {
		b.res = wire.ResultsOf(fmt.Errorf("%w: nonce of %d bytes and signature of %d, want %d and %d",
			auth.ErrMalformed, len(env.Nonce), len(env.Signature), auth.NonceSize, auth.SignatureSize))
		return b
	}
	st := auth.Stamp{From: env.From, Timestamp: env.Timestamp}
	copy(st.Nonce[:], env.Nonce)
	copy(st.Signature[:], env.Signature)
	b.reqs, b.res = s.ep.Open(&st, env.Encoding, wire.Proto, env.Body)
	return b
}

// collect collects an opened batch within the deadline its sender waits
// for.
func (s *server) collect(ctx context.Context, b *batch) *wire.Results {
	if b.deadline != 0 {
		d := time.Unix(0, b.deadline)
		if time.Until(d) <= 0 {
			return &wire.Results{Code: wire.Code_CODE_RETRY, Message: "the sender's deadline passed before the batch was collected"}
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	return s.ep.Collect(ctx, b.from, b.reqs)
}
