package grpc_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiregrpc"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// A stream that sends nothing is ended with Unauthenticated once
// FirstTimeout passes; one that authenticated and then idles is ended with
// Unavailable once IdleTimeout passes. Neither holds the server's
// goroutines for longer.
func TestStreamDeadlines(t *testing.T) {
	p := newPeer(t, dcgrpc.ServerConfig{FirstTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // generous: the server ends them
	defer cancel()
	silent, err := wiregrpc.NewReplicationClient(p.conn).Collect(opened(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("silent stream: %v, want Unauthenticated", err)
	}
	idle, err := wiregrpc.NewReplicationClient(p.conn).Collect(opened(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	_, body := batch(t, 2)
	if err := idle.Send(envelope(t, "unicom", wiretest.Secret, body)); err != nil {
		t.Fatal(err)
	}
	if res, err := idle.Recv(); err != nil || res.Code != 0 {
		t.Fatalf("batch: %v %v", res, err)
	}
	if _, err := idle.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("idle stream: %v, want Unavailable", err)
	}
	if n := p.store.Count(); n != 2 {
		t.Fatalf("%d applied, want 2", n)
	}
	// A forged batch is refused, counted and applied nowhere.
	if _, st, _ := exchange(t, p, envelope(t, "unicom", []byte("not the secret we share, at all"), body)); st == nil ||
		st.Code() != codes.Unauthenticated {
		t.Fatalf("forged: %v", st)
	}
	if got := p.recv.Stats(); got.RefusedUnauthenticated != 1 || p.store.Count() != 2 {
		t.Fatalf("stats %+v after a forged batch, %d applied", got, p.store.Count())
	}
}

// MaxStreams bounds the streams of one connection: with two held open, a
// third is not served.
func TestMaxStreams(t *testing.T) {
	p := newPeer(t, dcgrpc.ServerConfig{MaxStreams: 2, FirstTimeout: time.Minute})
	_, body := batch(t, 1)
	if res, st, _ := exchange(t, p, envelope(t, "unicom", wiretest.Secret, body)); st != nil {
		t.Fatalf("%v %v", res, st) // the connection knows the server's settings from here on
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		if _, err := wiregrpc.NewReplicationClient(p.conn).Collect(opened(t, ctx)); err != nil { // held open, silent
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	third, err := wiregrpc.NewReplicationClient(p.conn).Collect(opened(t, short))
	if err == nil {
		_ = third.Send(envelope(t, "unicom", wiretest.Secret, body))
		_, err = third.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third stream: %v, want it never served", err)
	}
	if n := p.store.Count(); n != 1 {
		t.Fatalf("%d applied, want 1", n)
	}
}

// A caller without the secret cannot make the server read or allocate a
// batch's body: a stream is refused on its opening stamp, before any
// message is read, whether the gate of ServerOptions refuses it or, on a
// server without it, the handler. Each attack below sends a whole 4 MiB
// envelope (MaxBody): the server receives no message of them (its stats
// handler sees no payload), and client and server together allocate
// less than a sixteenth of a body an attack with the gate, half without
// (a whole body under the race detector, whose pools drop buffers at
// random). With the gate, the stream
// never exists: the frames that follow its headers are read off the
// connection one at a time, into pooled buffers, and dropped. Without it,
// the HTTP/2 transport buffers what arrives until the handler refuses the
// stream, within the stream's flow-control window. Before streams had
// stamps of their own the server alone allocated a whole body each, and
// held it until the stamp inside was checked.
func TestUnauthenticatedStreamCostsNoBody(t *testing.T) {
	var received payloads
	withGate := newPeer(t, dcgrpc.ServerConfig{}, grpc.StatsHandler(&received))
	withoutGate := newPeerWith(t, dcgrpc.ServerConfig{}, []grpc.ServerOption{grpc.MaxRecvMsgSize(8 << 20),
		grpc.StatsHandler(&received)})
	_, body := batch(t, 1)
	big, err := proto.Marshal(envelope(t, "unicom", wiretest.Secret, append(body, make([]byte, wire.DefaultMaxBody-len(body)-64)...)))
	if err != nil {
		t.Fatal(err)
	}
	forged := envelope(t, "unicom", []byte("not the secret we share, at all"), body)
	for _, c := range []struct {
		name  string
		p     *peer
		bound uint64 // bytes allocated an attack
	}{{"gate", withGate, wire.DefaultMaxBody / 16}, {"handler", withoutGate, wire.DefaultMaxBody / 2}} {
		bound := c.bound
		if raceEnabled {
			bound = wire.DefaultMaxBody
		}
		attack := func(opening context.Context) {
			ctx, cancel := context.WithTimeout(opening, time.Minute)
			defer cancel()
			// The envelope goes as the bytes above, marshaled once: the
			// client allocates next to nothing.
			cs, err := c.p.conn.NewStream(ctx, &wiregrpc.Replication_ServiceDesc.Streams[0], collectMethod,
				grpc.ForceCodecV2(rawCodec{}))
			if err == nil {
				_ = cs.SendMsg(big) // may fail: the server refused the stream
				err = cs.RecvMsg(new(wire.Results))
			}
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("%s: unauthenticated stream: %v", c.name, err)
			}
		}
		bad := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("dcsync-from", "unicom",
			"dcsync-timestamp", strconv.FormatInt(time.Now().UnixNano(), 10), "dcsync-nonce", strings.Repeat("00", 16),
			"dcsync-signature", strings.Repeat("00", 32)))
		attack(context.Background()) // warm the client's buffers
		const attacks = 20
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range attacks {
			if i%2 == 0 {
				attack(context.Background()) // no stamp
			} else {
				attack(bad) // a stamp that does not verify
			}
		}
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if n := received.bytes.Load(); n != 0 {
			t.Errorf("%s: the server received %d bytes of messages on unauthenticated streams", c.name, n)
		}
		t.Logf("%s: %d attacks of %d bytes: %d bytes allocated in all (client and server)", c.name, attacks, len(big), alloc)
		if alloc > attacks*bound {
			t.Errorf("%s: %d attacks allocated %d bytes, more than %d each", c.name, attacks, alloc, bound)
		}
		// An authenticated stream on the same connection is served.
		if res, st, _ := exchange(t, c.p, forged); st == nil || st.Code() != codes.Unauthenticated {
			t.Fatalf("%s: forged envelope on an opened stream: %v %v", c.name, res, st)
		}
		if res, st, _ := exchange(t, c.p, envelope(t, "unicom", wiretest.Secret, body)); st != nil || res.Code != 0 {
			t.Fatalf("%s: %v %v", c.name, res, st)
		}
		if received.bytes.Swap(0) == 0 {
			t.Fatalf("%s: the stats handler saw no message of the authenticated streams", c.name)
		}
	}
}

// payloads is a stats.Handler that counts the bytes of messages a server
// received.
type payloads struct{ bytes atomic.Int64 }

func (p *payloads) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (p *payloads) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		p.bytes.Add(int64(in.Length))
	}
}

func (p *payloads) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (p *payloads) HandleConn(context.Context, stats.ConnStats) {}

const collectMethod = "/" + dcgrpc.ServiceName + "/Collect"

// rawCodec sends messages that are already marshaled ([]byte) as they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "dcsync-proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
