package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// third is the third datacenter of the three-datacenter target: a peer of
// both others, applying what unicom writes, as telecom does.
const third = "mobile"

// memory3Target is dcsync/memory with a third datacenter: unicom ships
// every write to telecom and mobile, each with its memory audit log. The
// tracker counts telecom's applies; flush then waits until unicom's queues
// are idle (mobile acknowledged every write too) and every audit record is
// stored, so the CPU per write covers both peers' work. It shows what a
// peer more costs per write against the two-datacenter row.
var memory3Target = target{name: "dcsync/memory-3dc", kind: kindDcsync, transport: "memory", audit: "memory",
	needs: none, start: startMemory3}

func startMemory3(_ context.Context, e *env) (system, error) {
	net := memtransport.NewNetwork(1)
	d := &dcsyncSystem{w: &memoryWiring{net: net}}
	delivery := dcsync.Delivery{BatchSize: e.cfg.BatchSize, Workers: e.cfg.Workers}
	noop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	apply := dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error {
		e.apply(r.Payload)
		return nil
	})
	dcs := []string{origin, peer, third}
	for _, dc := range []struct {
		name string
		proc dcsync.Processor
		s    **dcsync.Syncer
	}{{origin, noop, &d.origin}, {peer, apply, &d.peer}, {third, noop, new(*dcsync.Syncer)}} {
		s, err := dcsync.New(dcsync.Config{DC: dc.name, Processor: dc.proc, Audit: memaudit.New(0),
			Delivery: delivery, Peers: net.Peers(dc.name, dcs...)})
		if err != nil {
			return nil, errors.Join(err, d.close())
		}
		*dc.s = s
		if dc.name == third {
			d.others = append(d.others, s)
		}
		net.Attach(dc.name, s.Collector())
	}
	d.check = func() error {
		if st := d.origin.Stats(); st.ShipFailed > 0 {
			return fmt.Errorf("%d deliveries given up", st.ShipFailed)
		}
		return nil
	}
	return d, nil
}
