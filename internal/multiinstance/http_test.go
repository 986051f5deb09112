package multiinstance

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	memaudit "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/testserver"
	dchttp "github.com/dcsync/dcsync/transport/http"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// Three instances per datacenter over HTTP, each behind its own address;
// each instance ships to the peer's three addresses in turn
// (dcsync.RoundRobin). An instance's Syncer has the datacenter's Redis
// dedupe store, leader lock and checkpoints, and the audit log both
// datacenters share. The instance whose reconciler leads is shut down
// mid-load (its server closed at once, cutting the batches it was
// receiving, its Syncer closed; its lock neither renewed nor released).
func TestHTTP(t *testing.T) {
	w := newWorld()
	audit := memaudit.New(0)
	lns := map[string][]net.Listener{}
	urls := map[string][]string{}
	for _, dc := range dcs {
		for range instances {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns[dc] = append(lns[dc], ln)
			urls[dc] = append(urls[dc], "http://"+ln.Addr().String()+"/dcsync")
		}
	}
	// peer returns a Sender from dc to its peer's instances.
	peer := func(dc string) dcsync.Sender {
		var senders []dcsync.Sender
		for _, u := range urls[peerOf(dc)] {
			s, err := dchttp.NewSender(dchttp.SenderConfig{URL: u, From: dc, Secret: secret})
			if err != nil {
				t.Fatal(err)
			}
			senders = append(senders, s)
		}
		return dcsync.RoundRobin(senders...)
	}
	for _, dc := range dcs {
		srv := testserver.StartRedis(t)
		for n := range instances {
			// Each instance has its own client, as a process of its own would.
			client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { client.Close() })
			in := &inst{dc: dc, n: n, proc: w.newProcessor(dc),
				lock: &killableLock{LeaderLock: dcredis.NewLock(client, dcredis.Key("dcsync", dc, "leader"))}}
			s, err := dcsync.New(dcsync.Config{DC: dc, Peers: map[string]dcsync.Sender{peerOf(dc): peer(dc)},
				Processor: in.proc, Audit: audit, Logger: quiet,
				Dedupe: dcredis.NewDedupe(client, dcredis.DedupeOptions{Prefix: dcredis.Key("dcsync", dc, "dedupe:"),
					ClaimTTL: time.Second}),
				// Small batches: many of them, so each spreads over the
				// peer's instances.
				Delivery: dcsync.Delivery{BatchSize: 32,
					Backoff: dcsync.Backoff{Initial: 5 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 8}}})
			if err != nil {
				t.Fatal(err)
			}
			in.sync = s
			hs := &http.Server{Handler: dchttp.NewHandler(s.Collector(), dchttp.HandlerConfig{
				Secrets: map[string][]byte{peerOf(dc): secret}, Logger: quiet})}
			go func() { _ = hs.Serve(lns[dc][n]) }()
			in.kill = func() {
				_ = hs.Close()
				_ = s.Close()
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = hs.Shutdown(ctx)
				_ = s.Close()
			})
			rec, err := dcsync.NewReconciler(reconcilerConfig(dc, n, peer(dc), audit, in.lock,
				dcredis.NewCheckpoints(client, ""), w.passes[dc]))
			if err != nil {
				t.Fatal(err)
			}
			in.stopRec = background(t, "reconciler of "+in.String(), rec.Run)
			w.insts[dc] = append(w.insts[dc], in)
		}
	}
	w.run(t)

	// The peer's batches spread over every instance that stayed up.
	for _, dc := range dcs {
		for _, in := range w.insts[dc] {
			if !in.killed.Load() && in.proc.peer.Load() == 0 {
				t.Errorf("%s applied none of %s's writes", in, peerOf(dc))
			}
			if st := in.sync.Stats(); st.Invalid > 0 {
				t.Errorf("%s: %d writes refused as invalid", in, st.Invalid)
			}
		}
	}
}
