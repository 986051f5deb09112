package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ErrUnreplicated is returned when entries were added to a stream but
// fewer than NodeConfig.Replicas replicas of its server confirmed them
// within ReplicaTimeout. The entries may survive or not: a Write that
// fails with it may yet be applied, and a hop retries (adding the entries
// again, which the dedupe store drops). It counts as the next hop being
// unavailable (see ErrUnavailable).
var ErrUnreplicated = errors.New("redis: entries not confirmed by enough replicas")

// adder is what the adds to a stream need of a client: a
// goredis.UniversalClient, or one connection of a server. The reship hop
// adds through a script (see fenceScript).
type adder interface {
	goredis.Scripter
	XAdd(ctx context.Context, a *goredis.XAddArgs) *goredis.StringCmd
	Pipelined(ctx context.Context, fn func(goredis.Pipeliner) error) ([]goredis.Cmder, error)
}

// replicated runs add against client and, when NodeConfig.Replicas is
// positive, runs it on one connection to the server holding stream (the
// master of its slot in a cluster) and then waits (WAIT) until Replicas
// replicas have what the connection wrote. Hops whose next stream is on
// another server use it, so that an entry is acknowledged, or a Write
// returns, only once a failover of that server cannot lose it. The adds
// within one datacenter's slot need no wait: a replica receives them in
// order, so one that missed an add missed the acknowledgement after it.
func (n *Node) replicated(ctx context.Context, client goredis.UniversalClient, stream string, add func(adder) error) error {
	if n.cfg.Replicas <= 0 {
		return add(client)
	}
	server, err := serverOf(ctx, client, stream)
	if err == nil {
		conn := server.Conn()
		defer conn.Close()
		if err = add(conn); err == nil {
			var got int64
			got, err = conn.Wait(ctx, n.cfg.Replicas, n.cfg.ReplicaTimeout).Result()
			if err == nil && got < int64(n.cfg.Replicas) {
				return fmt.Errorf("%w: %d of %d replicas of the server of %s", ErrUnreplicated, got, n.cfg.Replicas, stream)
			}
		}
	}
	if cc, ok := client.(*goredis.ClusterClient); ok && err != nil {
		cc.ReloadState(ctx) // a failover may have moved the slot
	}
	return err
}

// canWait reports whether replicated can find the server of a key of
// client: the client types serverOf knows.
func canWait(client goredis.UniversalClient) bool {
	switch client.(type) {
	case *goredis.Client, *goredis.ClusterClient:
		return true
	}
	return false
}

// serverOf returns the client of the server that holds key.
func serverOf(ctx context.Context, client goredis.UniversalClient, key string) (*goredis.Client, error) {
	switch c := client.(type) {
	case *goredis.Client:
		return c, nil
	case *goredis.ClusterClient:
		s, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("redis: master of %s: %w", key, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("redis: NodeConfig.Replicas needs a *goredis.Client or *goredis.ClusterClient, not a %T", client)
}

// defaultReplicaTimeout is the default NodeConfig.ReplicaTimeout.
const defaultReplicaTimeout = 500 * time.Millisecond
