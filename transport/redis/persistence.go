package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ErrNotPersistent is returned by Node.CheckPersistence for a Redis server
// that does not keep an append-only file (appendonly no): a restart of it
// loses every entry of its streams, and with them the writes not yet
// delivered. Snapshots (save) do not help: they lose what came after the
// last one.
var ErrNotPersistent = errors.New("redis: server does not persist its streams (appendonly is not yes)")

// persistenceTimeout bounds the check Run makes when it starts.
const persistenceTimeout = 5 * time.Second

// CheckPersistence reads, with CONFIG GET, how each server behind the
// Node's Client (every shard of a cluster) persists, and returns an error
// wrapping ErrNotPersistent naming those that would lose the streams in a
// restart. What each setting survives:
//
//	appendonly no                a restart of redis-server: the streams are lost
//	appendonly yes, appendfsync no        kill -9 or a crash of redis-server; not of the machine (up to ~30s lost)
//	appendonly yes, appendfsync everysec  the same, and a machine's crash or power loss loses up to ~1s
//	appendonly yes, appendfsync always    a machine's crash or power loss too (the disk's own cache aside)
//
// Redis writes its append-only file before it answers a command, whatever
// appendfsync says; appendfsync says only when the file reaches the disk.
// Run calls it when it starts, logging an error for a server without an
// append-only file and a warning for appendfsync no. A server that refuses
// CONFIG (some managed services rename it) is reported in the error too.
func (n *Node) CheckPersistence(ctx context.Context) error {
	var errs []error
	check := func(ctx context.Context, c *goredis.Client) error {
		addr := c.Options().Addr
		cfg, err := c.ConfigGet(ctx, "append*").Result()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("redis: %s: CONFIG GET appendonly: %w", addr, err))
		case cfg["appendonly"] != "yes":
			errs = append(errs, fmt.Errorf("%w: %s has appendonly %q", ErrNotPersistent, addr, cfg["appendonly"]))
		case cfg["appendfsync"] == "no":
			n.cfg.Logger.Warn("redis: appendfsync no: a crash of the machine loses up to ~30s of the streams; everysec bounds that to ~1s",
				"dc", n.cfg.DC, "redis", addr)
		}
		return nil
	}
	var err error
	switch c := n.cfg.Client.(type) {
	case *goredis.Client:
		err = check(ctx, c)
	case interface {
		ForEachShard(context.Context, func(context.Context, *goredis.Client) error) error
	}:
		var mu sync.Mutex // ForEachShard checks the shards at once
		err = c.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return check(ctx, shard)
		})
	default:
		err = fmt.Errorf("redis: cannot check the persistence of a %T", c)
	}
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkPersistence is CheckPersistence as Run makes it: logged, and
// bounded by persistenceTimeout.
func (n *Node) checkPersistence(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, persistenceTimeout)
	defer cancel()
	if err := n.CheckPersistence(ctx); err != nil && ctx.Err() == nil {
		n.cfg.Logger.Error("redis: the streams of this datacenter may not survive a restart of its Redis: "+
			"set appendonly yes and appendfsync everysec (or always) on every server", "dc", n.cfg.DC, "err", err)
	}
}
