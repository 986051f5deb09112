package main

import (
	"context"
	"io"
	"log/slog"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	dcsyncredis "github.com/dcsync/dcsync/transport/redis"
)

// redisWiring joins the Syncers with transport/redis, the MQ wiring: each
// datacenter has its own redis-server holding its outbound, inbound and
// apply streams, and a Node running the workers of every hop, all on the
// library's defaults.
type redisWiring struct {
	clients map[string]*goredis.Client
	addrs   map[string]string // of each datacenter's redis-server
	nodeRunner
}

// nodeRunner runs the workers of the Nodes of an MQ wiring: its start and
// stop are the wiring's.
type nodeRunner struct {
	nodes  map[string]*dcsyncredis.Node
	runCtx context.Context // of the Nodes' Run, ended by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// client returns the client of dc's Redis, starting the server on first
// use.
func (w *redisWiring) client(ctx context.Context, e *env, dc string) (*goredis.Client, error) {
	if c := w.clients[dc]; c != nil {
		return c, nil
	}
	srv, err := e.startRedis(ctx)
	if err != nil {
		return nil, err
	}
	if w.clients == nil {
		w.clients, w.nodes, w.addrs = map[string]*goredis.Client{}, map[string]*dcsyncredis.Node{}, map[string]string{}
	}
	w.clients[dc] = srv.client(e, goredis.Options{})
	w.addrs[dc] = srv.addr
	return w.clients[dc], nil
}

func (w *redisWiring) config(ctx context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	own, err := w.client(ctx, e, cfg.DC)
	if err != nil {
		return cfg, err
	}
	remote, err := w.client(ctx, e, other)
	if err != nil {
		return cfg, err
	}
	if e.link != nil { // the reship workers reach the peer's Redis across the WAN
		addr, err := e.peerAddr(w.addrs[other])
		if err != nil {
			return cfg, err
		}
		remote = goredis.NewClient(&goredis.Options{Addr: addr})
		e.onClose(func() { remote.Close() })
	}
	node, err := dcsyncredis.NewNode(dcsyncredis.NodeConfig{DC: cfg.DC, Client: own,
		Peers: map[string]goredis.UniversalClient{other: remote}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return cfg, err
	}
	w.nodes[cfg.DC] = node
	return node.Wire(cfg), nil
}

func (w *nodeRunner) start(_ context.Context, _ *env, s *dcsync.Syncer) error {
	if w.cancel == nil {
		w.runCtx, w.cancel = context.WithCancel(context.Background())
	}
	node := w.nodes[s.DC()]
	w.wg.Go(func() { _ = node.Run(w.runCtx, s) })
	return nil
}

// stop ends the Nodes' workers; the Syncers may close once Run returned.
func (w *nodeRunner) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}
