package grpc_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiregrpc"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// peer is a receiving datacenter behind a gRPC server on loopback.
type peer struct {
	store *wiretest.Store
	recv  *dcsync.Syncer
	addr  string
	conn  *grpc.ClientConn // a plain client connection, for raw streams
}

func newPeer(t *testing.T, cfg dcgrpc.ServerConfig, opts ...grpc.ServerOption) *peer {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = wiretest.Secrets()
	}
	return newPeerWith(t, cfg, append(dcgrpc.ServerOptions(cfg), opts...))
}

// newPeerWith is newPeer with the server's options opts only.
func newPeerWith(t *testing.T, cfg dcgrpc.ServerConfig, opts []grpc.ServerOption) *peer {
	t.Helper()
	p := &peer{store: wiretest.NewStore()}
	recv := wiretest.Receiver(t, p.store, nil)
	p.recv = recv
	if cfg.Secrets == nil {
		cfg.Secrets = wiretest.Secrets()
	}
	srv := grpc.NewServer(opts...)
	if err := dcgrpc.Register(srv, recv.Collector(), cfg); err != nil {
		t.Fatal(err)
	}
	ln := wiretest.Listen(t)
	p.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	var err error
	p.conn, err = grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.conn.Close() })
	return p
}

// batch returns n valid writes from unicom, serialized.
func batch(t testing.TB, n int) ([]*dcsync.Request, []byte) { return wiretest.Batch(t, n) }

// envelope signs body as from with secret, as batch 7 of its stream.
func envelope(t *testing.T, from string, secret, body []byte) *wire.Envelope {
	return envelopeEnc(t, from, secret, body, wire.Encoding_ENCODING_IDENTITY)
}

// opened returns ctx carrying the stamp that opens a stream as unicom.
func opened(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	return openedAs(t, ctx, "unicom", wiretest.Secret)
}

// openedAs returns ctx carrying the stamp that opens a stream as from,
// signed with secret.
func openedAs(t *testing.T, ctx context.Context, from string, secret []byte) context.Context {
	t.Helper()
	s, err := auth.NewSigner(from, secret)
	if err != nil {
		t.Fatal(err)
	}
	st := s.SignStream()
	return metadata.NewOutgoingContext(ctx, dcgrpc.OpeningMD(&st))
}

// envelopeEnc is envelope for a body encoded as enc, which the MAC binds.
func envelopeEnc(t *testing.T, from string, secret, body []byte, enc wire.Encoding) *wire.Envelope {
	t.Helper()
	s, err := auth.NewSigner(from, secret)
	if err != nil {
		t.Fatal(err)
	}
	s.Encoding = wire.EncodingName(enc)
	st := s.SignEnvelope(7, 0, body)
	return &wire.Envelope{Seq: 7, From: st.From, Timestamp: st.Timestamp, Nonce: st.Nonce[:],
		Signature: st.Signature[:], Body: body, Encoding: enc}
}

// exchange sends env on a new stream and returns its Results, or the
// status and trailer the stream ended with.
func exchange(t *testing.T, p *peer, env *wire.Envelope) (*wire.Results, *status.Status, metadata.MD) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := wiregrpc.NewReplicationClient(p.conn).Collect(opened(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Send(env); err != nil {
		t.Fatal(err)
	}
	res, err := cs.Recv()
	if err != nil {
		return nil, status.Convert(err), cs.Trailer()
	}
	_ = cs.CloseSend()
	return res, nil, nil
}

func TestServerAccepts(t *testing.T) {
	p := newPeer(t, dcgrpc.ServerConfig{})
	_, body := batch(t, 3)
	env := envelope(t, "unicom", wiretest.Secret, body)
	res, st, _ := exchange(t, p, env)
	if st != nil || res.Code != wire.Code_CODE_OK || res.Seq != 7 {
		t.Fatalf("%v %v", res, st)
	}
	_, body = batch(t, 2)
	env = envelopeEnc(t, "unicom", wiretest.Secret, wiretest.Gzip(body), wire.Encoding_ENCODING_GZIP)
	env.Encoding = wire.Encoding_ENCODING_GZIP
	if res, st, _ := exchange(t, p, env); st != nil || res.Code != wire.Code_CODE_OK {
		t.Fatalf("gzip: %v %v", res, st)
	}
	if n := p.store.Count(); n != 5 {
		t.Fatalf("%d applied, want 5", n)
	}

	// A batch whose sender stopped waiting is answered, not applied, and
	// the stream goes on.
	_, body = batch(t, 1)
	s, err := auth.NewSigner("unicom", wiretest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Second).UnixNano()
	stamp := s.SignEnvelope(7, past, body)
	env = &wire.Envelope{Seq: 7, Deadline: past, From: "unicom", Timestamp: stamp.Timestamp, Nonce: stamp.Nonce[:],
		Signature: stamp.Signature[:], Body: body}
	if res, st, _ := exchange(t, p, env); st != nil || res.Code != wire.Code_CODE_RETRY {
		t.Fatalf("past deadline: %v %v", res, st)
	}
	if n := p.store.Count(); n != 5 {
		t.Fatalf("%d applied, want 5", n)
	}

	hc := healthpb.NewHealthClient(p.conn)
	for _, svc := range []string{"", dcgrpc.ServiceName} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, resp, err)
		}
	}
	if dcgrpc.ServiceName != wiregrpc.Replication_ServiceDesc.ServiceName {
		t.Fatal("ServiceName differs from the generated service's")
	}
}

// Every refusal ends the stream with the right code, a message saying why
// and the batch's seq in the trailer, and applies nothing.
func TestServerRefuses(t *testing.T) {
	bad := wiretest.NewRefusals(t)
	p := newPeer(t, dcgrpc.ServerConfig{MaxBody: 64 << 10, MaxBatch: 10, MaxSkew: time.Minute, Logger: bad.Logger()})
	good := bad.Good
	replayed := envelope(t, "unicom", wiretest.Secret, good)
	if res, st, _ := exchange(t, p, replayed); st != nil || res.Code != wire.Code_CODE_OK {
		t.Fatalf("first send of the replayed batch: %v %v", res, st)
	}
	before := p.store.Count()

	signed := func(body []byte) *wire.Envelope { return envelope(t, "unicom", wiretest.Secret, body) }
	with := func(env *wire.Envelope, f func(*wire.Envelope)) *wire.Envelope { f(env); return env }
	for _, c := range []struct {
		name string
		env  *wire.Envelope
		code codes.Code
		says string
	}{
		{"garbage", signed([]byte("this is not protobuf")), codes.InvalidArgument, "malformed"},
		{"truncated, signed whole", with(signed(good), func(e *wire.Envelope) { e.Body = e.Body[:len(e.Body)-4] }),
			codes.Unauthenticated, "signature"},
		{"truncated, signed as sent", signed(good[:len(good)-4]), codes.InvalidArgument, "malformed"},
		{"over MaxBody", signed(make([]byte, 65<<10)), codes.InvalidArgument, "limit"},
		{"over MaxBatch", signed(bad.Eleven), codes.InvalidArgument, "11 requests, limit 10"},
		{"gzip bomb", envelopeEnc(t, "unicom", wiretest.Secret, bad.Bomb, wire.Encoding_ENCODING_GZIP),
			codes.InvalidArgument, "decompresses"},
		{"unknown encoding", with(signed(good), func(e *wire.Envelope) { e.Encoding = 9 }), codes.InvalidArgument, "encoding"},
		{"unknown datacenter", envelope(t, "mobile", wiretest.Secret, good), codes.Unauthenticated, `"mobile"`},
		{"seq changed", with(signed(good), func(e *wire.Envelope) { e.Seq = 8 }), codes.Unauthenticated, "signature"},
		{"deadline changed", with(signed(good), func(e *wire.Envelope) { e.Deadline = time.Now().Add(time.Hour).UnixNano() }),
			codes.Unauthenticated, "signature"},
		{"to changed", with(signed(good), func(e *wire.Envelope) { e.To = "telecom" }), codes.Unauthenticated, "signature"},
		{"wrong secret", envelope(t, "unicom", []byte("not the secret we share at all"), good), codes.Unauthenticated, "signature"},
		{"stale", with(signed(good), func(e *wire.Envelope) { e.Timestamp -= int64(2 * time.Minute) }), codes.Unauthenticated, "skew"},
		{"replay", replayed, codes.Unauthenticated, "replay"},
		{"short nonce", with(signed(good), func(e *wire.Envelope) { e.Nonce = e.Nonce[:8] }), codes.Unauthenticated, "nonce"},
		{"forged origin", signed(bad.Forged), codes.PermissionDenied, "origin"},
	} {
		res, st, trailer := exchange(t, p, c.env)
		if st == nil {
			t.Errorf("%s: answered %v", c.name, res)
			continue
		}
		t.Logf("%s: %v %s", c.name, st.Code(), st.Message())
		if st.Code() != c.code || !strings.Contains(st.Message(), c.says) {
			t.Errorf("%s: %v %q, want %v and a message with %q", c.name, st.Code(), st.Message(), c.code, c.says)
		}
		if got := trailer.Get("dcsync-seq"); len(got) != 1 || got[0] != strconv.FormatUint(c.env.Seq, 10) {
			t.Errorf("%s: trailer %v", c.name, trailer)
		}
	}
	// A stream opened by a stranger, or with the wrong secret, is refused
	// before any message is read.
	for _, c := range []struct {
		from   string
		secret []byte
		says   string
	}{{"mobile", wiretest.Secret, `"mobile"`}, {"unicom", []byte("not the secret we share at all"), "signature"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cs, err := wiregrpc.NewReplicationClient(p.conn).Collect(openedAs(t, ctx, c.from, c.secret))
		if err == nil {
			_, err = cs.Recv()
		}
		cancel()
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), c.says) {
			t.Errorf("stream opened by %s: %v, want Unauthenticated with %q", c.from, err, c.says)
		}
	}
	// Over the server's receive limit, gRPC refuses the message itself.
	if _, st, _ := exchange(t, p, signed(make([]byte, 100<<10))); st == nil || st.Code() != codes.ResourceExhausted {
		t.Errorf("over MaxRecvMsgSize: %v", st)
	}
	if n := p.store.Count(); n != before {
		t.Fatalf("refused batches applied %d writes", n-before)
	}
	bad.CheckLogged(t)
}

func TestReceiverNamed(t *testing.T) {
	wiretest.TestReceiverNamed(t, func(tb testing.TB, store *wiretest.Store, requireTo bool) string {
		cfg := dcgrpc.ServerConfig{Secrets: wiretest.Secrets(), RequireTo: requireTo}
		srv := grpc.NewServer(dcgrpc.ServerOptions(cfg)...)
		if err := dcgrpc.Register(srv, wiretest.Receiver(tb, store, nil).Collector(), cfg); err != nil {
			tb.Fatal(err)
		}
		ln := wiretest.Listen(tb)
		go func() { _ = srv.Serve(ln) }()
		tb.Cleanup(srv.Stop)
		return ln.Addr().String()
	}, func(tb testing.TB, addr, to string) dcsync.Sender {
		s, err := dcgrpc.NewSender(dcgrpc.SenderConfig{Target: addr, From: "unicom", To: to, Secret: wiretest.Secret})
		return wiretest.Closing(tb, s, err)
	})
}
