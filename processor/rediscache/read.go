package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Entry is what the cache holds for one key: a value or a tombstone, with
// the write that put it there.
type Entry struct {
	Value   []byte // nil in a tombstone
	Version uint64 // the write's version
	Origin  string // the datacenter where the write entered
	ID      string // the write's request ID
	Deleted bool   // a tombstone: the key was deleted by this write
}

// Get returns the value of key. found is false when the key was never set,
// was deleted (a tombstone), or its tombstone expired.
func (c *Cache) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	vals, err := c.client.HMGet(ctx, c.prefix+key, "v", "del").Result()
	if err != nil {
		return nil, false, fmt.Errorf("rediscache: get %q: %w", key, err)
	}
	v, ok := vals[0].(string)
	if !ok || vals[1] != nil {
		return nil, false, nil
	}
	return []byte(v), true, nil
}

// GetVersioned returns the entry of key, tombstones included (Deleted is
// true), so that a caller can compare versions across datacenters. found
// is false only when the key has no entry at all.
func (c *Cache) GetVersioned(ctx context.Context, key string) (e Entry, found bool, err error) {
	h, err := c.client.HGetAll(ctx, c.prefix+key).Result()
	if err != nil {
		return e, false, fmt.Errorf("rediscache: get %q: %w", key, err)
	}
	if len(h) == 0 {
		return e, false, nil
	}
	ver, ok := h["ver"]
	if !ok {
		return e, false, fmt.Errorf("rediscache: get %q: %w", key, errNoVersion)
	}
	if e.Version, err = strconv.ParseUint(ver, 10, 64); err != nil {
		return e, false, fmt.Errorf("rediscache: get %q: version %q: %w", key, ver, err)
	}
	e.Origin, e.ID, e.Deleted = h["origin"], h["id"], h["del"] != ""
	if v, ok := h["v"]; ok && !e.Deleted {
		e.Value = []byte(v)
	}
	return e, true, nil
}

// errNoVersion reports a hash at an entry's name that no Cache wrote.
var errNoVersion = errors.New("hash has no ver field: not written by rediscache")
