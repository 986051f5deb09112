package grpc_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiregrpc"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// newSender returns a sender from unicom unless cfg says otherwise.
func newSender(t *testing.T, cfg dcgrpc.SenderConfig) *dcgrpc.Sender {
	t.Helper()
	wiretest.FromUnicom(&cfg.From, &cfg.Secret)
	s, err := dcgrpc.NewSender(cfg)
	return wiretest.Closing(t, s, err)
}

// Many Sends share one stream, their batches in flight together.
func TestSenderPipelines(t *testing.T) {
	p := newPeer(t, dcgrpc.ServerConfig{Workers: 2})
	s := newSender(t, dcgrpc.SenderConfig{Target: p.addr, Compress: true})
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for range 20 {
		wg.Go(func() {
			for range 20 {
				reqs, _ := batch(t, 5)
				if err := s.Send(context.Background(), reqs); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := p.store.Count(); n != 20*20*5 {
		t.Fatalf("%d applied, want %d", n, 20*20*5)
	}
}

// A refused batch fails for good with its gRPC status in the error; the
// stream it ended is replaced.
func TestSenderErrors(t *testing.T) {
	wiretest.TestSenderErrors(t, transport{}, wiretest.SenderErrors{
		Closed:       dcgrpc.ErrClosed,
		WrongSecret:  func(err error) bool { return status.Code(err) == codes.Unauthenticated },
		ForgedOrigin: func(err error) bool { return status.Code(err) == codes.PermissionDenied },
	})
}

// refuser ends each stream, after two batches, with a final status naming
// the first.
type refuser struct {
	wiregrpc.UnimplementedReplicationServer
}

func (refuser) Collect(stream wiregrpc.Replication_CollectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil {
		return err
	}
	stream.SetTrailer(metadata.Pairs("dcsync-seq", "1"))
	_ = first
	return status.Error(codes.InvalidArgument, "batch 1 is malformed")
}

// When a final failure ends the stream, only the batch it names fails for
// good; the others in flight are retryable.
func TestSenderFinalFailureInFlight(t *testing.T) {
	srv := grpc.NewServer()
	wiregrpc.RegisterReplicationServer(srv, refuser{})
	ln := wiretest.Listen(t)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	s := newSender(t, dcgrpc.SenderConfig{Target: ln.Addr().String()})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			reqs, _ := batch(t, 1)
			errs <- s.Send(context.Background(), reqs)
		}()
	}
	var final, retry int
	for range 2 {
		err := <-errs
		switch {
		case errors.Is(err, dcsync.ErrInvalid) && status.Code(err) == codes.InvalidArgument:
			final++
		case err != nil && !dcsync.IsPermanent(err):
			retry++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if final != 1 || retry != 1 {
		t.Fatalf("%d final and %d retryable, want one each", final, retry)
	}
}

func TestSenderTLS(t *testing.T) {
	certs := wiretest.NewTLS(t)
	p := newPeer(t, dcgrpc.ServerConfig{}, grpc.Creds(credentials.NewTLS(certs.Server)))
	reqs, _ := batch(t, 5)
	if err := newSender(t, dcgrpc.SenderConfig{Target: p.addr, TLS: certs.Client}).Send(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]dcgrpc.SenderConfig{
		"no client certificate":     {Target: p.addr, TLS: certs.ClientNoCert},
		"certificate of a stranger": {Target: p.addr, TLS: certs.Stranger},
		"plaintext":                 {Target: p.addr},
	} {
		reqs, _ := batch(t, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := newSender(t, cfg).Send(ctx, reqs)
		cancel()
		if err == nil {
			t.Errorf("%s: sent", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if n := p.store.Count(); n != 5 {
		t.Fatalf("%d applied, want 5", n)
	}
}

func TestSenderConfig(t *testing.T) {
	for _, cfg := range []dcgrpc.SenderConfig{
		{From: "unicom", Secret: wiretest.Secret},
		{Target: "x:1", Secret: wiretest.Secret},
		{Target: "x:1", From: "unicom", Secret: []byte("short")},
	} {
		if _, err := dcgrpc.NewSender(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
