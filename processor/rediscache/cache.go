package rediscache

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// The ops a Cache applies; Request.Op must be one of them.
const (
	OpSet    = "set"    // store Payload as the key's value
	OpDelete = "delete" // remove the value, keeping a versioned tombstone
)

// DefaultTombstoneTTL is how long a tombstone is kept by default: well past
// the reconciler's default Lookback of one hour, so a replayed write older
// than a delete still finds the delete's tombstone.
const DefaultTombstoneTTL = 24 * time.Hour

// Options tunes a Cache. The zero value is ready to use.
type Options struct {
	// Prefix is put before every Request.Key to name its Redis hash; the
	// zero value uses keys as they are.
	Prefix string
	// TombstoneTTL is how long the tombstone of a delete is kept. It must
	// outlast the longest a write can take to arrive (retries, reconciler
	// replays), or a set older than the delete that arrives after the
	// tombstone expired brings the value back. Zero selects
	// DefaultTombstoneTTL; negative keeps tombstones until a newer set.
	TombstoneTTL time.Duration
}

// Cache is a dcsync.Processor over one Redis (a client, a cluster or a
// ring: any redis.UniversalClient). It is safe for concurrent use.
type Cache struct {
	client redis.UniversalClient
	prefix string
	ttl    string // tombstone lifetime in milliseconds, "0" for none

	applied, stale atomic.Uint64
}

var _ dcsync.Processor = (*Cache)(nil)

// New returns a Cache that keeps its entries in client. The caller keeps
// ownership of client and closes it. New does not talk to Redis: the script
// is sent on first use and run by its SHA-1 from then on.
func New(client redis.UniversalClient, opts Options) *Cache {
	ttl := opts.TombstoneTTL
	if ttl == 0 {
		ttl = DefaultTombstoneTTL
	}
	// PEXPIRE takes whole milliseconds; a positive TTL below one still expires.
	ms := max(ttl.Milliseconds(), 1)
	if ttl < 0 {
		ms = 0
	}
	return &Cache{client: client, prefix: opts.Prefix, ttl: strconv.FormatInt(ms, 10)}
}

// Process implements dcsync.Processor: it applies req when req is newer
// than the stored entry, and does nothing, successfully, when it is not.
func (c *Cache) Process(ctx context.Context, req *dcsync.Request) error {
	_, err := c.Apply(ctx, req)
	return err
}

// Apply applies req when its (Version, Origin) is newer than the stored
// entry's, and reports whether it did. An unknown op, an empty key or a
// missing version is an error matching dcsync.ErrInvalid.
func (c *Cache) Apply(ctx context.Context, req *dcsync.Request) (applied bool, err error) {
	args, err := c.args(req)
	if err != nil {
		return false, err
	}
	n, err := apply.Run(ctx, c.client, []string{c.prefix + req.Key}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("rediscache: apply %s to %q: %w", req.ID, req.Key, err)
	}
	return c.count(n), nil
}

// ProcessBatch applies every request of reqs that is newer than its stored
// entry, in one pipeline: one round trip for the batch instead of one per
// request, for hosts and queue workers that apply writes in batches.
// Requests to one key are applied in slice order, though the outcome does
// not depend on it. It returns nil, or a *dcsync.BatchError naming the
// requests that failed; the others are applied.
func (c *Cache) ProcessBatch(ctx context.Context, reqs []*dcsync.Request) error {
	errs := make([]error, len(reqs))
	args := make([][]any, len(reqs))
	cmds := make([]*redis.Cmd, len(reqs))
	pipe := c.client.Pipeline()
	for i, req := range reqs {
		if args[i], errs[i] = c.args(req); errs[i] == nil {
			cmds[i] = apply.EvalSha(ctx, pipe, []string{c.prefix + req.Key}, args[i]...)
		}
	}
	// Each command's own error is read below; Exec returns only the first.
	_, _ = pipe.Exec(ctx)
	// A Redis that lost its script cache (a restart) answers NOSCRIPT to
	// every EVALSHA: send those again in full, which loads the script.
	retry := false
	for i, cmd := range cmds {
		if cmd != nil && isNoScript(cmd.Err()) {
			cmds[i] = apply.Eval(ctx, pipe, []string{c.prefix + reqs[i].Key}, args[i]...)
			retry = true
		}
	}
	if retry {
		_, _ = pipe.Exec(ctx)
	}
	failed := false
	for i, cmd := range cmds {
		if cmd == nil {
			failed = true
			continue
		}
		n, err := cmd.Int()
		if err != nil {
			errs[i] = fmt.Errorf("rediscache: apply %s to %q: %w", reqs[i].ID, reqs[i].Key, err)
			failed = true
			continue
		}
		c.count(n)
	}
	if failed {
		return &dcsync.BatchError{Errs: errs}
	}
	return nil
}

// args checks req and returns the script's arguments for it.
func (c *Cache) args(req *dcsync.Request) ([]any, error) {
	switch {
	case req == nil:
		return nil, dcsync.ErrNilRequest
	case req.Key == "":
		return nil, dcsync.ErrEmptyKey
	case req.Version == 0:
		return nil, fmt.Errorf("%w: request %s", dcsync.ErrNoVersion, req.ID)
	case req.Op != OpSet && req.Op != OpDelete:
		return nil, fmt.Errorf("%w: rediscache: unknown op %q of request %s (want %q or %q)",
			dcsync.ErrInvalid, req.Op, req.ID, OpSet, OpDelete)
	}
	value := req.Payload
	if req.Op == OpDelete {
		value = nil
	}
	return []any{strconv.FormatUint(req.Version, 10), req.Origin, req.Op, value, req.ID, c.ttl}, nil
}

// count tallies a script result and reports whether the write was applied.
func (c *Cache) count(result int) bool {
	if result == 1 {
		c.applied.Add(1)
		return true
	}
	c.stale.Add(1)
	return false
}

// Stats counts what a Cache did since New.
type Stats struct {
	Applied uint64 // writes that were newer than the stored entry, and applied
	Stale   uint64 // writes that were not newer, and dropped
}

// Stats returns the counters since New.
func (c *Cache) Stats() Stats {
	return Stats{Applied: c.applied.Load(), Stale: c.stale.Load()}
}
