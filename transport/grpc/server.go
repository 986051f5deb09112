package grpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

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
	// ReplayCache is how many batch nonces are remembered for each peer to
	// refuse replays; default 1<<18.
	ReplayCache int
	// NextSecrets holds a second secret accepted from a peer while its
	// secret rotates (see SECURITY.md); a peer named here must be in
	// Secrets too.
	NextSecrets map[string][]byte
	// DC names this datacenter; batches signed for another are refused.
	// Default: the Collector's own, when it is a dcsync.Syncer's.
	DC string
	// RequireTo refuses batches whose stamp names no receiver (a Sender
	// without To): a batch is then accepted only by the datacenter it was
	// signed for, even where a secret is shared by more than two
	// datacenters. Stamps naming another datacenter are always refused.
	// Default false, so that senders without To keep working.
	RequireTo bool
	// Nonces, when set, remembers nonces across the replicas of this
	// receiver, so that a batch captured on its way to one is refused by
	// the others; transport/redis's NonceStore is one. Without it replay
	// protection is per process.
	Nonces NonceStore
	// Workers is how many batches of one stream are collected at once;
	// default 1, which applies a sender's batches in the order sent.
	Workers int
	// FirstTimeout bounds the wait for a stream's first batch, which
	// authenticates it; default 10 seconds. A stream that sends none is
	// ended with Unauthenticated.
	FirstTimeout time.Duration
	// IdleTimeout ends a stream that carried no batch for this long, with
	// Unavailable (a Sender opens a new one with its next batch); default 5
	// minutes.
	IdleTimeout time.Duration
	// MaxStreams bounds the concurrent streams of one connection
	// (ServerOptions); default 16. A Sender uses one.
	MaxStreams uint32
	// Logger receives a warning for batches refused as a whole (bad
	// signature, unknown datacenter, malformed...), at most one a second
	// with the count of the others; nil selects slog.Default().
	Logger *slog.Logger
	// Health receives the serving status of the service. Nil registers a
	// new health service on the server; set it when the host registers
	// its own.
	Health *health.Server
}

// NonceStore remembers the nonces of accepted batches across processes;
// see ServerConfig.Nonces. transport/redis's NonceStore implements it.
type NonceStore = auth.NonceStore

// Defaults of ServerConfig.
const (
	DefaultFirstTimeout = 10 * time.Second
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultMaxStreams   = 16
)

// ServerOptions returns the options a grpc.Server serving cfg needs: a
// receive limit that admits a body of MaxBody and its envelope, no more;
// flow-control windows that let several batches be in flight; at most
// MaxStreams streams a connection; a bound on headers; a handshake within
// 10 seconds; connections idle for 5 minutes closed; and a keepalive policy
// that lets Senders ping every 30 seconds (gRPC's default policy answers
// that with GOAWAY "too_many_pings") but no more often than every 15.
// Bound the number of connections with the listener you Serve, for
// instance golang.org/x/net/netutil.LimitListener.
//
// They also install a tap (grpc.InTapHandle, of which a server has one)
// that checks the stamp opening each replication stream as its headers
// arrive, before the stream exists: a stream without a valid stamp is
// refused there, and what its caller sends after is dropped frame by frame,
// never buffered for a stream nor decoded. These
// refusals are logged but not counted in the Syncer's Stats. Without the
// tap, Register's handler checks the stamp before reading any message.
func ServerOptions(cfg ServerConfig) []grpc.ServerOption {
	streams := cfg.MaxStreams
	if streams == 0 {
		streams = DefaultMaxStreams
	}
	opts := []grpc.ServerOption{}
	if g, err := newGate(cfg); err == nil { // else Register reports the error
		opts = append(opts, grpc.InTapHandle(g.tap))
	}
	return append(opts, grpc.MaxRecvMsgSize(maxMsg(cfg.MaxBody)),
		grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window),
		grpc.MaxConcurrentStreams(streams), grpc.MaxHeaderListSize(64<<10),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: DefaultIdleTimeout,
			Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2, PermitWithoutStream: true}))
}

// endpointConfig is cfg's part that both the gate and the endpoint take.
func (cfg ServerConfig) endpointConfig() wire.EndpointConfig {
	return wire.EndpointConfig{Secrets: cfg.Secrets, NextSecrets: cfg.NextSecrets, DC: cfg.DC, RequireTo: cfg.RequireTo,
		MaxBody: cfg.MaxBody, MaxBatch: cfg.MaxBatch, MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache,
		Nonces: cfg.Nonces, Log: cfg.Logger}
}

// gate checks the stamps opening streams, in the transport's tap.
type gate struct{ ep *wire.Endpoint }

func newGate(cfg ServerConfig) (*gate, error) {
	ec := cfg.endpointConfig()
	// The tap runs on the connection's reading goroutine: no shared store
	// there, only this process's replay cache. The receiver check waits
	// for the handler, which knows the Collector's DC.
	ec.Nonces, ec.DC, ec.RequireTo = nil, "", false
	ep, err := wire.NewEndpoint(nopCollector{}, ec)
	if err != nil {
		return nil, err
	}
	return &gate{ep: ep}, nil
}

type nopCollector struct{}

func (nopCollector) Collect(context.Context, string, []*dcsync.Request) error { return nil }

// openedBy marks the context of a stream whose opening stamp the gate
// verified; its value is the peer's name.
type openedBy struct{}

// tap refuses a replication stream whose opening stamp does not verify.
func (g *gate) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != collectMethod {
		return ctx, nil
	}
	st, err := openingStamp(info.Header)
	if err == nil {
		err = g.ep.Verifier.Verify(ctx, &st, nil)
	}
	if err != nil {
		return ctx, refusal(ctx, g.ep, st.From, err, false)
	}
	return context.WithValue(ctx, openedBy{}, st.From), nil
}

// refusal logs a stream refused at its opening for err, counts it when
// count is set, and returns the status ending it.
func refusal(ctx context.Context, ep *wire.Endpoint, from string, err error, count bool) error {
	res := wire.ResultsOf(err)
	if count && !errors.Is(err, auth.ErrBusy) {
		res = ep.Reject(err)
	}
	ep.Refused(remoteOf(ctx), from, res)
	code, _ := codeOf(res.Code)
	return status.Error(code, "dcsync: stream opening refused: "+res.Message)
}

func remoteOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// keepaliveTime is how often a Sender pings an idle connection, to find a
// dead peer before a batch waits on it.
const keepaliveTime = 30 * time.Second

// window is the flow-control window of streams and connections, in bytes.
// gRPC returns a stream's credit as the handler reads, a quarter of the
// window at a time, so a stream carries about half its window a round
// trip: 8 MiB held a 40 ms round trip to about 320,000 writes/s of 330
// bytes, under what Delivery.Window (16 MiB) lets fly; 16 MiB carries
// about 0.9 of the loopback rate there (docs/wan.md).
const window = 16 << 20

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
	ep, err := wire.NewEndpoint(c, cfg.endpointConfig())
	if err != nil {
		return fmt.Errorf("dcsync/transport/grpc: %w", err)
	}
	wiregrpc.RegisterReplicationServer(s, &server{ep: ep, workers: max(cfg.Workers, 1),
		first: or(cfg.FirstTimeout, DefaultFirstTimeout), idle: or(cfg.IdleTimeout, DefaultIdleTimeout)})
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
	ep          *wire.Endpoint
	workers     int
	first, idle time.Duration
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
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
	remote := remoteOf(ctx)
	// The stream's opening stamp, checked before any message is read: by
	// the gate already when the server took ServerOptions, here otherwise.
	md, _ := metadata.FromIncomingContext(ctx)
	opening, err := openingStamp(md)
	if err == nil {
		if gated, ok := ctx.Value(openedBy{}).(string); ok && gated == opening.From {
			err = s.ep.Verifier.Check(&opening) // this datacenter's name, which the gate did not know
		} else {
			err = s.ep.Verifier.Verify(ctx, &opening, nil)
		}
	}
	if err != nil {
		return refusal(ctx, s.ep, opening.From, err, true)
	}
	from := opening.From
	// A stream must authenticate with its first batch within s.first (a
	// batch that fails ends it), and then carry a batch every s.idle while
	// none is being collected.
	var (
		busy     atomic.Int64 // batches received and not yet answered
		active   atomic.Bool  // a batch arrived since the timer was set
		received atomic.Bool  // a batch arrived at all
		timerMu  sync.Mutex
		timer    *time.Timer
	)
	timerMu.Lock()
	timer = time.AfterFunc(s.first, func() {
		if ctx.Err() != nil {
			return
		}
		if active.Swap(false) || busy.Load() > 0 {
			timerMu.Lock()
			timer.Reset(s.idle)
			timerMu.Unlock()
			return
		}
		if !received.Load() {
			fail(status.Errorf(codes.Unauthenticated, "dcsync: no batch within %v of opening the stream", s.first))
			return
		}
		fail(status.Errorf(codes.Unavailable, "dcsync: stream idle for %v, closed", s.idle))
	})
	timerMu.Unlock()
	defer timer.Stop()
	reply := func(seq uint64, from string, res *wire.Results) {
		defer busy.Add(-1)
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
			busy.Add(1)
			active.Store(true)
			received.Store(true)
			b := s.open(ctx, from, env)
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

// open authenticates and decodes env, received on a stream opened by
// peer from.
func (s *server) open(ctx context.Context, from string, env *wire.Envelope) *batch {
	b := &batch{seq: env.Seq, from: from, deadline: env.Deadline}
	if len(env.Nonce) != auth.NonceSize || len(env.Signature) != auth.SignatureSize || len(env.To) > auth.MaxName {
		b.res = s.ep.Reject(fmt.Errorf("%w: nonce of %d bytes, signature of %d and receiver name of %d, want %d, %d and at most %d",
			auth.ErrMalformed, len(env.Nonce), len(env.Signature), len(env.To), auth.NonceSize, auth.SignatureSize, auth.MaxName))
		return b
	}
	if env.From != from {
		b.res = s.ep.Reject(fmt.Errorf("%w: envelope from %.128q on a stream opened by %q", auth.ErrMalformed, env.From, from))
		return b
	}
	st := auth.Stamp{Kind: auth.KindEnvelope, Seq: env.Seq, Deadline: env.Deadline, From: env.From, To: env.To,
		Timestamp: env.Timestamp}
	copy(st.Nonce[:], env.Nonce)
	copy(st.Signature[:], env.Signature)
	b.reqs, b.res = s.ep.Open(ctx, &st, env.Encoding, wire.Proto, env.Body)
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
