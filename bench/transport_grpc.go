package main

import (
	"context"

	"google.golang.org/grpc"

	"github.com/dcsync/dcsync"
	dcsyncgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// grpcWiring joins the Syncers with transport/grpc: each serves its
// Collector on a loopback grpc.Server, and streams to the other's.
type grpcWiring struct{ listeners }

func (w *grpcWiring) config(_ context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	l, err := w.get(e, other)
	if err != nil {
		return cfg, err
	}
	w.other[cfg.DC] = other
	addr, err := e.peerAddr(l.Addr().String())
	if err != nil {
		return cfg, err
	}
	s, err := dcsyncgrpc.NewSender(dcsyncgrpc.SenderConfig{Target: addr, From: cfg.DC, Secret: secret})
	if err != nil {
		return cfg, err
	}
	cfg.Peers = map[string]dcsync.Sender{other: s}
	return cfg, nil
}

func (w *grpcWiring) start(_ context.Context, e *env, s *dcsync.Syncer) error {
	l, err := w.get(e, s.DC())
	if err != nil {
		return err
	}
	cfg := dcsyncgrpc.ServerConfig{Secrets: map[string][]byte{w.other[s.DC()]: secret}}
	srv := grpc.NewServer(dcsyncgrpc.ServerOptions(cfg)...)
	if err := dcsyncgrpc.Register(srv, s.Collector(), cfg); err != nil {
		return err
	}
	go srv.Serve(l) // returns when the phase ends and closes it
	e.onClose(srv.Stop)
	return nil
}

func (w *grpcWiring) stop() {}
