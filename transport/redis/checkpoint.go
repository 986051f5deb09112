package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// Checkpoints is a dcsync.CheckpointStore in Redis: one key per datacenter,
// holding the time in RFC 3339 form. Create it with NewCheckpoints.
type Checkpoints struct {
	client goredis.UniversalClient
	prefix string
}

var _ dcsync.CheckpointStore = (*Checkpoints)(nil)

// NewCheckpoints returns a store whose keys are prefix followed by the
// datacenter name; an empty prefix selects "dcsync:checkpoint:".
func NewCheckpoints(client goredis.UniversalClient, prefix string) *Checkpoints {
	return &Checkpoints{client: client, prefix: or(prefix, "dcsync:checkpoint:")}
}

// Load implements dcsync.CheckpointStore.
func (c *Checkpoints) Load(ctx context.Context, dc string) (time.Time, error) {
	s, err := c.client.Get(ctx, c.prefix+dc).Result()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("redis: load checkpoint of %s: %w", dc, err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("redis: checkpoint of %s: %w", dc, err)
	}
	return t, nil
}

// Save implements dcsync.CheckpointStore.
func (c *Checkpoints) Save(ctx context.Context, dc string, t time.Time) error {
	if err := c.client.Set(ctx, c.prefix+dc, t.UTC().Format(time.RFC3339Nano), 0).Err(); err != nil {
		return fmt.Errorf("redis: save checkpoint of %s: %w", dc, err)
	}
	return nil
}
