package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// DedupeOptions configures a Dedupe. The zero value of each field selects its
// default.
type DedupeOptions struct {
	// Prefix starts every key; the request ID follows. Default "dcsync:dedupe:".
	Prefix string
	// ClaimTTL is how long a claim lasts when its worker neither commits nor
	// releases it (it died); default 10s. Keep it shorter than the time after
	// which a dead worker's entries are claimed by another (NodeConfig.ClaimIdle),
	// so that the other finds the claim expired.
	ClaimTTL time.Duration
	// Retention is how long an applied ID is remembered; default 1 hour.
	// Every ID costs about 190 bytes of Redis memory for that long.
	Retention time.Duration
}

// Values of a dedupe key.
const (
	dedupeClaimed = "c"
	dedupeApplied = "a"
)

// Dedupe is a dcsync.DedupeStore in Redis, shared by every collector of a
// datacenter: one key per request ID, holding "c" while a worker applies it
// (expiring after ClaimTTL) and "a" once applied (expiring after Retention).
// Concurrent calls are pipelined together. Create it with NewDedupe.
type Dedupe struct {
	client *goredis.Client
	fast   goredis.Cmdable // the client's autopipeline, or the client itself
	opts   DedupeOptions
}

var _ dcsync.DedupeStore = (*Dedupe)(nil)

// NewDedupe returns a Dedupe keeping its keys in client's server.
func NewDedupe(client *goredis.Client, opts DedupeOptions) *Dedupe {
	opts.Prefix = or(opts.Prefix, "dcsync:dedupe:")
	opts.ClaimTTL = or(opts.ClaimTTL, 10*time.Second)
	opts.Retention = or(opts.Retention, time.Hour)
	return &Dedupe{client: client, fast: autoPipeline(client), opts: opts}
}

// Claim implements dcsync.DedupeStore with one SET NX GET.
func (d *Dedupe) Claim(ctx context.Context, id string) (dcsync.Claim, error) {
	if b := deferredFrom(ctx); b != nil && b.dedupe == d {
		if c, ok := b.claim(id); ok {
			return c, nil
		}
	}
	c, err := claimOf(d.fast.SetArgs(ctx, d.opts.Prefix+id, dedupeClaimed,
		goredis.SetArgs{Mode: "NX", TTL: d.opts.ClaimTTL, Get: true}).Result())
	if err != nil {
		return 0, fmt.Errorf("redis: dedupe claim: %w", err)
	}
	return c, nil
}

// claimOf reads the reply of SET NX GET: no previous value means claimed.
func claimOf(prev string, err error) (dcsync.Claim, error) {
	switch {
	case errors.Is(err, goredis.Nil):
		return dcsync.Claimed, nil
	case err != nil:
		return 0, err
	case prev == dedupeApplied:
		return dcsync.Applied, nil
	}
	return dcsync.InFlight, nil
}

// Commit implements dcsync.DedupeStore.
func (d *Dedupe) Commit(ctx context.Context, id string) error {
	if b := deferredFrom(ctx); b != nil && b.dedupe == d && b.commit(id) {
		return nil
	}
	if err := d.fast.Set(ctx, d.opts.Prefix+id, dedupeApplied, d.opts.Retention).Err(); err != nil {
		return fmt.Errorf("redis: dedupe commit: %w", err)
	}
	return nil
}

// releaseScript deletes a claim, but not an applied mark: a worker whose
// claim expired and was committed by another must not erase that.
var releaseScript = goredis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`)

// Release implements dcsync.DedupeStore.
func (d *Dedupe) Release(ctx context.Context, id string) error {
	if b := deferredFrom(ctx); b != nil && b.dedupe == d && b.release(id) {
		return nil // the claim was never written
	}
	if err := releaseScript.Run(ctx, d.client, []string{d.opts.Prefix + id}, dedupeClaimed).Err(); err != nil {
		return fmt.Errorf("redis: dedupe release: %w", err)
	}
	return nil
}

// forget drops what the store knows of id, applied or claimed, so that a
// later delivery of the write is applied. Nodes call it for writes
// dead-lettered after the collector committed them.
func (d *Dedupe) forget(ctx context.Context, ids ...string) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = d.opts.Prefix + id
	}
	if err := d.client.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("redis: dedupe forget: %w", err)
	}
	return nil
}

// autoPipeline returns client's shared autopipeliner, which batches the
// commands of concurrent callers into pipelines, or client itself when the
// autopipeliner cannot be had.
func autoPipeline(client *goredis.Client) goredis.Cmdable {
	if ap, err := client.AutoPipeline(); err == nil {
		return ap
	}
	return client
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
