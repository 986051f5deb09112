package grpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiregrpc"
)

// SenderConfig configures NewSender. From, Secret and one of Target or Conn
// are required; the zero value of every other field selects its default.
type SenderConfig struct {
	// Target is the peer's address, "host:port" or any gRPC target name.
	Target string
	// Conn, when set, is used instead of dialing Target; Close leaves it
	// open.
	Conn *grpc.ClientConn
	// From names this datacenter, as the peer's ServerConfig.Secrets does.
	From string
	// To names the peer's datacenter, as its ServerConfig.DC (or its
	// Syncer's DC) does. The stamp binds it, so a batch signed for one
	// datacenter is refused by every other, even one that shares the
	// secret. Optional: empty signs no receiver, which a peer accepts
	// unless it sets RequireTo. Set it; see SECURITY.md.
	To string
	// Secret is shared with the peer; at least 16 bytes.
	Secret []byte
	// TLS secures the connection dialed to Target (mutual TLS with
	// Certificates). Nil dials in plaintext: batches are still signed,
	// but readable on the link.
	TLS *tls.Config
	// DialOptions follow NewSender's own dial options, so they override
	// them: keepalive pings every 30s (the peer's server should take
	// ServerOptions), 16 MiB flow-control windows, reconnect backoff up to 5s.
	DialOptions []grpc.DialOption
	// Compress gzips batches: fewer bytes on a long link for some CPU.
	Compress bool
	// MaxBody and MaxBatch split batches that the peer would refuse; they
	// should equal the peer's ServerConfig values. Defaults as there.
	MaxBody  int
	MaxBatch int
}

// Sender streams batches to one peer. It implements dcsync.Sender and is
// safe for concurrent use: concurrent Sends share one stream, their
// batches in flight together.
type Sender struct {
	out     *wire.Outbound
	conn    *grpc.ClientConn
	ownConn bool
	client  wiregrpc.ReplicationClient

	base context.Context // parent of the streams; ends with Close
	stop context.CancelFunc

	mu      sync.Mutex
	cur     *stream  // nil until the first Send, and after a stream breaks
	opening *opening // the stream being opened, if any
	closed  bool
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("dcsync/transport/grpc: sender closed")

// NewSender returns a Sender for cfg. It does not connect: the first Send
// does.
func NewSender(cfg SenderConfig) (*Sender, error) {
	out, err := wire.NewOutbound(cfg.From, cfg.To, cfg.Secret, cfg.Compress, cfg.MaxBody, cfg.MaxBatch)
	if err != nil {
		return nil, fmt.Errorf("dcsync/transport/grpc: %w", err)
	}
	s := &Sender{out: out, conn: cfg.Conn}
	if s.conn == nil {
		if cfg.Target == "" {
			return nil, errors.New("dcsync/transport/grpc: SenderConfig needs Target or Conn")
		}
		creds := insecure.NewCredentials()
		if cfg.TLS != nil {
			creds = credentials.NewTLS(cfg.TLS)
		}
		opts := append([]grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 10 * time.Second}),
			// A peer back from an outage is found within seconds, not
			// gRPC's default of up to two minutes.
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond,
				Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}, MinConnectTimeout: 5 * time.Second}),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxMsg(out.MaxBody))),
			// Windows that hold several batches: with gRPC's 64 KiB start,
			// a batch waits a round trip for window updates.
			grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window),
		}, cfg.DialOptions...)
		if s.conn, err = grpc.NewClient(cfg.Target, opts...); err != nil {
			return nil, fmt.Errorf("dcsync/transport/grpc: dial %s: %w", cfg.Target, err)
		}
		s.ownConn = true
	}
	s.client = wiregrpc.NewReplicationClient(s.conn)
	s.base, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Send implements dcsync.Sender: it streams reqs, split to the limits, and
// returns nil, a *dcsync.BatchError naming the requests that failed, or an
// error for the whole batch. Failures the peer says are final match
// dcsync.ErrInvalid or dcsync.ErrUnauthenticated; a broken stream, a peer
// that is down and the like do not, so they are retried.
func (s *Sender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	return s.out.Send(ctx, reqs, s.send)
}

// Pipe implements dcsync.Pipeliner: the Sender's one stream carries the
// batches in the order they were begun, and the peer's server (with
// ServerConfig.Workers 1, the default) applies them in that order.
func (s *Sender) Pipe() dcsync.Pipe { return s }

// Begin implements dcsync.Pipe: it writes reqs on the stream and returns
// a function that waits for their results. A batch over the limits is sent
// in parts by the returned function instead, out of the pipe's order.
func (s *Sender) Begin(ctx context.Context, reqs []*dcsync.Request) (wait func() error) {
	if !s.out.Fits(reqs) {
		return func() error { return s.Send(ctx, reqs) }
	}
	wait, err := s.begin(ctx, reqs)
	if err != nil {
		return func() error { return err }
	}
	return wait
}

// send streams one batch that fits the limits and waits for its results.
func (s *Sender) send(ctx context.Context, reqs []*dcsync.Request) error {
	wait, err := s.begin(ctx, reqs)
	if err != nil {
		return err
	}
	return wait()
}

// begin streams one batch that fits the limits and returns what waits for
// its results.
func (s *Sender) begin(ctx context.Context, reqs []*dcsync.Request) (func() error, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, err
	}
	buf := wire.GetBuffer()
	body, err := s.out.Encode((*buf)[:0], reqs)
	if err != nil {
		wire.PutBuffer(buf)
		return nil, err
	}
	env := &wire.Envelope{Encoding: s.out.Encoding, Body: body}
	if d, ok := ctx.Deadline(); ok {
		env.Deadline = d.UnixNano()
	}
	seq, ch, err := st.send(env, s.out.Signer)
	// gRPC has serialized env into buffers of its own by now.
	*buf = body
	wire.PutBuffer(buf)
	if err != nil {
		return nil, err
	}
	return func() error {
		select {
		case res := <-ch:
			return wire.ErrorOf(res, len(reqs))
		case <-st.done:
			return st.errFor(seq)
		case <-ctx.Done():
			st.forget(seq)
			return ctxErr(ctx)
		}
	}, nil
}

// stream returns the open stream, opening one when there is none. The
// stream outlives the Send that opens it, so it is opened apart and only
// waited for within ctx.
func (s *Sender) stream(ctx context.Context) (*stream, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.cur != nil {
		st := s.cur
		s.mu.Unlock()
		return st, nil
	}
	op := s.opening
	if op == nil {
		op = &opening{done: make(chan struct{})}
		s.opening = op
		go s.open(op)
	}
	s.mu.Unlock()
	select {
	case <-op.done:
		return op.st, op.err
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
}

// opening is a stream being opened.
type opening struct {
	done chan struct{} // closed when st or err is set
	st   *stream
	err  error
}

func (s *Sender) open(op *opening) {
	sctx, cancel := context.WithCancel(s.base)
	// The stream opens with a stamp of its own, which the server checks
	// before it reads any envelope.
	stamp := s.out.Signer.SignStream()
	sctx = metadata.NewOutgoingContext(sctx, openingMD(&stamp))
	cs, err := s.client.Collect(sctx, grpc.CallContentSubtype(codecName))
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(op.done)
	s.opening = nil
	if err != nil {
		cancel()
		op.err = streamError(err)
		// The Syncer's own backoff paces the retries: let the next one
		// dial at once instead of waiting for gRPC's reconnect timer.
		s.conn.ResetConnectBackoff()
		return
	}
	st := &stream{cs: cs, cancel: cancel, pending: map[uint64]chan *wire.Results{}, done: make(chan struct{})}
	op.st = st
	if s.closed {
		cancel()
		op.st, op.err = nil, ErrClosed
		return
	}
	s.cur = st
	go st.receive(func() {
		s.mu.Lock()
		if s.cur == st {
			s.cur = nil
		}
		s.mu.Unlock()
	})
}

// Close ends the stream, failing the batches in flight with a retryable
// error, and closes the connection NewSender dialed.
func (s *Sender) Close() error {
	s.mu.Lock()
	s.closed = true
	st := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.stop()
	if st != nil {
		<-st.done
	}
	if s.ownConn {
		if err := s.conn.Close(); err != nil {
			return fmt.Errorf("dcsync/transport/grpc: close: %w", err)
		}
	}
	return nil
}

// stream is one Collect stream and the batches in flight on it.
type stream struct {
	cs     grpc.BidiStreamingClient[wire.Envelope, wire.Results]
	cancel context.CancelFunc
	sendMu sync.Mutex // one SendMsg at a time

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]chan *wire.Results
	done    chan struct{} // closed when the stream has ended
	err     error         // why it ended; set before done is closed
	failed  uint64        // the batch a final status names
	named   bool          // whether failed is set
}

// send numbers env, signs it with sg (its number and deadline too) and
// writes it; the returned channel receives its results.
func (st *stream) send(env *wire.Envelope, sg *auth.Signer) (uint64, chan *wire.Results, error) {
	ch := make(chan *wire.Results, 1)
	st.mu.Lock()
	st.seq++
	seq := st.seq
	if st.pending == nil { // ended meanwhile
		st.mu.Unlock()
		return seq, nil, st.errFor(seq)
	}
	st.pending[seq] = ch
	st.mu.Unlock()
	env.Seq = seq
	stamp := sg.SignEnvelope(seq, env.Deadline, env.Body)
	env.From, env.To, env.Timestamp = stamp.From, stamp.To, stamp.Timestamp
	env.Nonce, env.Signature = stamp.Nonce[:], stamp.Signature[:]
	st.sendMu.Lock()
	err := st.cs.Send(env)
	st.sendMu.Unlock()
	if err != nil {
		// The real reason is the stream's status, which receive reads.
		<-st.done
		return seq, nil, st.errFor(seq)
	}
	return seq, ch, nil
}

func (st *stream) forget(seq uint64) {
	st.mu.Lock()
	delete(st.pending, seq)
	st.mu.Unlock()
}

// receive hands each Results to the batch it answers until the stream
// ends, then fails what is still in flight and calls ended.
func (st *stream) receive(ended func()) {
	var err error
	for {
		var res *wire.Results
		if res, err = st.cs.Recv(); err != nil {
			break
		}
		st.mu.Lock()
		ch := st.pending[res.Seq]
		delete(st.pending, res.Seq)
		st.mu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
	ended()
	st.cancel()
	st.mu.Lock()
	st.err = streamError(err)
	st.failed, st.named = seqOf(st.cs.Trailer())
	st.pending = nil
	st.mu.Unlock()
	close(st.done)
}

// errFor returns the error of batch seq on an ended stream: the final
// status for the batch it names, a retryable error for the others.
func (st *stream) errFor(seq uint64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.named || st.failed == seq {
		return st.err
	}
	return fmt.Errorf("dcsync/transport/grpc: %w (ended by batch %d: %v)", wire.ErrStreamBroken, st.failed, st.err)
}
