package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// Lock is a dcsync.LeaderLock in one Redis key holding the holder's token
// with a TTL. Taking, renewing and releasing check the token in a script, so
// a contender whose lock expired and was taken by another cannot extend or
// release the other's. Create it with NewLock.
type Lock struct {
	client goredis.UniversalClient
	key    string
}

var _ dcsync.LeaderLock = (*Lock)(nil)

// NewLock returns a Lock on key in client's server.
func NewLock(client goredis.UniversalClient, key string) *Lock {
	return &Lock{client: client, key: key}
}

var acquireScript = goredis.NewScript(`
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if holder == false then
  redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
  return 1
end
return 0`)

// releaseScript deletes the lock, but only for its holder.
var releaseScript = goredis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`)

// Acquire implements dcsync.LeaderLock: it takes the lock for token when
// it is free, extends it when token holds it, and reports whether token
// holds it now. ttl is rounded down to milliseconds, and at least one.
func (l *Lock) Acquire(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	ms := max(ttl.Milliseconds(), 1)
	n, err := acquireScript.Run(ctx, l.client, []string{l.key}, token, ms).Int()
	if err != nil {
		return false, fmt.Errorf("redis: acquire lock %s: %w", l.key, err)
	}
	return n == 1, nil
}

// Release implements dcsync.LeaderLock: it frees the lock if token holds it.
func (l *Lock) Release(ctx context.Context, token string) error {
	if err := releaseScript.Run(ctx, l.client, []string{l.key}, token).Err(); err != nil {
		return fmt.Errorf("redis: release lock %s: %w", l.key, err)
	}
	return nil
}
