package redis

import (
	"context"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/wait"
)

// Across a WAN, a connection of a peer's client costs round trips before
// its first command: go-redis sends HELLO, then CLIENT SETINFO, each
// waiting for its answer (connections pre-dialed for MinIdleConns too,
// which are handshaken on first use). A reship batch that took a new
// connection was late by those round trips, and, as the fence adds a
// worker's batches in order, so was every batch parked behind it: at 20 ms
// one way, when the batches in flight grew past what the pool had opened
// before (at the start, or as the rate rose), the lag's p50 went to 100 ms
// for a quarter of a second. So the Node opens and handshakes, ahead of
// the batches, as many connections of each peer's client as its reship
// workers' batches in flight take at once. The PINGs that tell whether the
// link is long also set the workers' pace (see link).
const (
	// warmEvery is how often a peer's round trip is timed and its pool
	// checked for connections missing (closed, or never opened).
	warmEvery = 5 * time.Second
	// warmRefresh is how often, when the pool is idle, its connections are
	// used all at once, so that none ages past ConnMaxIdleTime (go-redis
	// then closes it on its next use, and dials another).
	warmRefresh = time.Minute
)

// warm times a PING to the peer of client c, whose inbound stream is
// stream, every warmEvery, for l (the pace of the reship workers), and
// keeps c's connections ready for their batches in flight, until ctx
// ends: Workers × maxFlights of them (at most the pool's size), on a link
// whose round trip is nearRTT or longer. On a shorter one a dial is
// cheap, and nothing is opened ahead.
func (n *Node) warm(ctx context.Context, c goredis.UniversalClient, stream string, l *link) {
	want := n.cfg.Workers * maxFlights
	if size := poolSize(c); size > 0 {
		want = min(want, size)
	}
	var last time.Time // of the last round that used every connection
	for {
		if target, err := peerNode(ctx, c, stream); err == nil {
			if rtt, err := timePing(ctx, target); err == nil {
				l.observe(rtt)
				st := target.PoolStats()
				if rtt >= nearRTT && (last.IsZero() || int(st.TotalConns) < want ||
					(st.IdleConns == st.TotalConns && time.Since(last) > warmRefresh)) {
					warmConns(ctx, target, want)
					last = time.Now()
				}
			}
		}
		if !wait.Sleep(ctx, warmEvery) {
			return
		}
	}
}

// timePing returns the time of a PING to target's server, on a
// connection already open (the PING before it opens one if none is).
func timePing(ctx context.Context, target pinger) (time.Duration, error) {
	if err := target.Ping(ctx).Err(); err != nil {
		return 0, err
	}
	began := time.Now()
	if err := target.Ping(ctx).Err(); err != nil {
		return 0, err
	}
	return time.Since(began), nil
}

// warmConns has want PINGs to target's server under way at once, each on
// a connection of its own: the pool opens those it lacks, and their
// handshakes are done before a batch needs them.
func warmConns(ctx context.Context, target pinger, want int) {
	var wg sync.WaitGroup
	for range want {
		wg.Go(func() { _ = target.Ping(ctx).Err() })
	}
	wg.Wait()
}

// pinger is a client of one server, or of a Redis Cluster's node.
type pinger interface {
	Ping(ctx context.Context) *goredis.StatusCmd
	PoolStats() *goredis.PoolStats
}

// peerNode returns the client of the server that holds stream: for a
// Redis Cluster, its master's, whose pool the reship batches use.
func peerNode(ctx context.Context, c goredis.UniversalClient, stream string) (pinger, error) {
	if cc, ok := c.(*goredis.ClusterClient); ok {
		return cc.MasterForKey(ctx, stream)
	}
	return c, nil
}

// poolSize returns the PoolSize of c's options, 0 when it cannot tell.
func poolSize(c goredis.UniversalClient) int {
	switch c := c.(type) {
	case *goredis.Client:
		return c.Options().PoolSize
	case *goredis.ClusterClient:
		return c.Options().PoolSize
	}
	return 0
}
