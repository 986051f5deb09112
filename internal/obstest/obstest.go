// Package obstest sets up datacenters over the memory transport for the
// tests of the observability packages.
package obstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// Mesh is a full mesh of datacenters in one process.
type Mesh struct {
	Net     *memtransport.Network
	Syncers map[string]*dcsync.Syncer
}

// New starts a Syncer per name of dcs, in a full mesh over one memory
// network, each with the Observer obs returns for it (nil for none). The
// Syncers close when t ends.
func New(t testing.TB, obs func(dc string, peers []string) dcsync.Observer, dcs ...string) *Mesh {
	t.Helper()
	m := &Mesh{Net: memtransport.NewNetwork(1), Syncers: map[string]*dcsync.Syncer{}}
	for _, dc := range dcs {
		var peers []string
		for _, p := range dcs {
			if p != dc {
				peers = append(peers, p)
			}
		}
		cfg := dcsync.Config{DC: dc, Peers: m.Net.Peers(dc, dcs...),
			Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil }),
			Delivery:  dcsync.Delivery{Timeout: 5 * time.Second, Backoff: dcsync.Backoff{Attempts: 1}}}
		if obs != nil {
			cfg.Observer = obs(dc, peers)
		}
		s, err := dcsync.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		m.Net.Attach(dc, s.Collector())
		m.Syncers[dc] = s
	}
	return m
}

// Down makes every batch to dc fail.
func (m *Mesh) Down(dc string) {
	for from := range m.Syncers {
		if from != dc {
			m.Net.SetFaults(from, dc, memtransport.Faults{Fail: 1})
		}
	}
}

// Write writes n writes in dc and waits until they are sent or given up.
func (m *Mesh) Write(t testing.TB, dc string, n int) []*dcsync.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var reqs []*dcsync.Request
	for i := range n {
		req := &dcsync.Request{Key: fmt.Sprintf("k%d", i), Op: "set", Payload: []byte("v")}
		if err := m.Syncers[dc].Write(ctx, req); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	if err := m.Syncers[dc].Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return reqs
}
