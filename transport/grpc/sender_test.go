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
	dcsyncgrpc "github.com/dcsync/dcsync/transport/grpc"
)

func newSender(t *testing.T, cfg dcsyncgrpc.SenderConfig) *dcsyncgrpc.Sender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "unicom"
	}
	if cfg.Secret == nil {
		cfg.Secret = wiretest.Secret
	}
	s, err := dcsyncgrpc.NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Many Sends share one stream, their batches in flight together.
func TestSenderPipelines(t *testing.T) {
	p := newPeer(t, dcsyncgrpc.ServerConfig{Workers: 2})
	s := newSender(t, dcsyncgrpc.SenderConfig{Target: p.addr, Compress: true})
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

func TestSenderErrors(t *testing.T) {
	p := newPeer(t, dcsyncgrpc.ServerConfig{})
	ctx := context.Background()

	reqs, _ := batch(t, 2)
	err := newSender(t, dcsyncgrpc.SenderConfig{Target: p.addr, Secret: []byte("a secret telecom does not know")}).Send(ctx, reqs)
	if !errors.Is(err, dcsync.ErrUnauthenticated) || !dcsync.IsPermanent(err) || status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong secret: %v", err)
	}

	s := newSender(t, dcsyncgrpc.SenderConfig{Target: p.addr})
	reqs, _ = batch(t, 3)
	reqs[1].Key = ""
	var be *dcsync.BatchError
	if err := s.Send(ctx, reqs); !errors.As(err, &be) || be.Errs[0] != nil || be.Errs[2] != nil ||
		!errors.Is(be.Errs[1], dcsync.ErrInvalid) {
		t.Errorf("one invalid request: %v", err)
	}
	reqs, _ = batch(t, 1)
	reqs[0].Origin = "telecom"
	if err := s.Send(ctx, reqs); !errors.Is(err, dcsync.ErrUnauthenticated) || status.Code(err) != codes.PermissionDenied {
		t.Errorf("forged origin: %v", err)
	}
	// The stream that ended is replaced.
	reqs, _ = batch(t, 2)
	if err := s.Send(ctx, reqs); err != nil {
		t.Errorf("after a refused batch: %v", err)
	}

	ln := wiretest.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	if err := newSender(t, dcsyncgrpc.SenderConfig{Target: addr}).Send(ctx, reqs); err == nil || dcsync.IsPermanent(err) {
		t.Errorf("nobody listening: %v", err)
	}

	closed := newSender(t, dcsyncgrpc.SenderConfig{Target: p.addr})
	_ = closed.Close()
	if err := closed.Send(ctx, reqs); !errors.Is(err, dcsyncgrpc.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if n := p.store.Count(); n != 4 {
		t.Fatalf("%d applied, want 4", n)
	}
}

// A peer that does not answer in time: the context ends the wait, and the
// batch is retryable.
func TestSenderDeadline(t *testing.T) {
	release := make(chan struct{})
	p := newPeer(t, dcsyncgrpc.ServerConfig{})
	p.store.OnApply(func(int64) { <-release })
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	reqs, _ := batch(t, 1)
	err := newSender(t, dcsyncgrpc.SenderConfig{Target: p.addr}).Send(ctx, reqs)
	if !errors.Is(err, context.DeadlineExceeded) || dcsync.IsPermanent(err) {
		t.Fatalf("%v", err)
	}
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
	s := newSender(t, dcsyncgrpc.SenderConfig{Target: ln.Addr().String()})
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
	p := newPeer(t, dcsyncgrpc.ServerConfig{}, grpc.Creds(credentials.NewTLS(certs.Server)))
	reqs, _ := batch(t, 5)
	if err := newSender(t, dcsyncgrpc.SenderConfig{Target: p.addr, TLS: certs.Client}).Send(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]dcsyncgrpc.SenderConfig{
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
	for _, cfg := range []dcsyncgrpc.SenderConfig{
		{From: "unicom", Secret: wiretest.Secret},
		{Target: "x:1", Secret: wiretest.Secret},
		{Target: "x:1", From: "unicom", Secret: []byte("short")},
	} {
		if _, err := dcsyncgrpc.NewSender(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
