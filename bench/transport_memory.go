package main

import (
	"context"

	"github.com/dcsync/dcsync"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// memoryWiring joins the Syncers in process with transport/memory, no
// faults injected: what dcsync costs without a network.
type memoryWiring struct{ net *memtransport.Network }

func (w *memoryWiring) config(_ context.Context, _ *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	if w.net == nil {
		w.net = memtransport.NewNetwork(1)
	}
	cfg.Peers = map[string]dcsync.Sender{other: w.net.Sender(cfg.DC, other)}
	return cfg, nil
}

func (w *memoryWiring) start(_ context.Context, _ *env, s *dcsync.Syncer) error {
	w.net.Attach(s.DC(), s.Collector())
	return nil
}

func (w *memoryWiring) stop() {}
