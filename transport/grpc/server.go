package grpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
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
	// Health receives the serving status of the service. Nil registers a
	// new health service on the server; set it when the host registers
	// its own.
	Health *health.Server
}

// ServerOptions returns the options a grpc.Server serving cfg needs: a
// receive limit that admits a body of MaxBody and its envelope, no more.
func ServerOptions(cfg ServerConfig) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsg(cfg.MaxBody))}
}

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
	ep, err := wire.NewEndpoint(c, cfg.Secrets, cfg.MaxBody, cfg.MaxBatch,
		auth.VerifierConfig{MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache})
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

// Collect serves one stream: each Envelope is authenticated, decoded and
// collected, and answered with its Results.
func (s *server) Collect(stream wiregrpc.Replication_CollectServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		sendMu sync.Mutex
		wg     sync.WaitGroup
		sem    = make(chan struct{}, s.workers)
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
	// Recv runs apart so that a final failure ends the stream at once,
	// without waiting for the sender's next batch.
	envs := make(chan *wire.Envelope)
	go func() {
		defer close(envs)
		for {
			env, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fail(err)
				}
				return
			}
			select {
			case envs <- env:
			case <-ctx.Done():
				return
			}
		}
	}()
loop:
	for {
		var env *wire.Envelope
		select {
		case env = <-envs:
		case <-ctx.Done():
		}
		if env == nil {
			break loop
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res := s.serve(ctx, env)
			if code, isFinal := codeOf(res.Code); isFinal {
				sendMu.Lock()
				stream.SetTrailer(metadata.Pairs(seqTrailer, strconv.FormatUint(env.Seq, 10)))
				sendMu.Unlock()
				fail(status.Error(code, res.Message))
				return
			}
			res.Seq = env.Seq
			sendMu.Lock()
			err := stream.Send(res)
			sendMu.Unlock()
			if err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return final
}

// serve collects one batch, within the deadline its sender waits for.
func (s *server) serve(ctx context.Context, env *wire.Envelope) *wire.Results {
	st := auth.Stamp{From: env.From, Timestamp: env.Timestamp}
	if len(env.Nonce) != auth.NonceSize || len(env.Signature) != auth.SignatureSize {
		return wire.ResultsOf(fmt.Errorf("%w: nonce of %d bytes and signature of %d, want %d and %d",
			auth.ErrMalformed, len(env.Nonce), len(env.Signature), auth.NonceSize, auth.SignatureSize))
	}
	copy(st.Nonce[:], env.Nonce)
	copy(st.Signature[:], env.Signature)
	if env.Deadline != 0 {
		d := time.Unix(0, env.Deadline)
		if time.Until(d) <= 0 {
			return &wire.Results{Code: wire.Code_CODE_RETRY, Message: "deadline passed before the batch was read"}
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	return s.ep.Serve(ctx, &st, env.Encoding, wire.Proto, env.Body)
}
