package elastic

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync"
)

// Checkpoints is a dcsync.CheckpointStore in Elasticsearch: one small
// document per datacenter, named after it, in the index
// IndexPrefix_checkpoints. A reconciler that restarts, or another that takes
// over the leader lock, resumes where the last pass ended.
type Checkpoints struct {
	l *Log
}

var _ dcsync.CheckpointStore = (*Checkpoints)(nil)

// Checkpoints returns the checkpoint store next to the Log's records.
func (l *Log) Checkpoints() *Checkpoints { return &Checkpoints{l} }

type checkpointDoc struct {
	DC         string    `json:"dc"`
	Checkpoint time.Time `json:"checkpoint"`
}

// Load implements dcsync.CheckpointStore.
func (c *Checkpoints) Load(ctx context.Context, dc string) (time.Time, error) {
	res, err := c.l.client.Get().Index(c.l.checkpointIndex()).Id(dc).Do(ctx)
	if elastic.IsNotFound(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("elastic: load checkpoint of %s: %w", dc, err)
	}
	var d checkpointDoc
	if err := json.Unmarshal(res.Source, &d); err != nil {
		return time.Time{}, fmt.Errorf("elastic: checkpoint of %s: %w", dc, err)
	}
	return d.Checkpoint, nil
}

// Save implements dcsync.CheckpointStore. The document is written with
// refresh, so a Load right after sees it. Saving the zero time removes the
// checkpoint.
func (c *Checkpoints) Save(ctx context.Context, dc string, t time.Time) error {
	if err := c.l.installed(ctx); err != nil { // the index must exist with its mapping
		return fmt.Errorf("elastic: save checkpoint of %s: %w", dc, err)
	}
	var err error
	if t.IsZero() {
		_, err = c.l.client.Delete().Index(c.l.checkpointIndex()).Id(dc).Refresh("true").Do(ctx)
		if elastic.IsNotFound(err) {
			err = nil
		}
	} else {
		_, err = c.l.client.Index().Index(c.l.checkpointIndex()).Id(dc).
			BodyJson(checkpointDoc{DC: dc, Checkpoint: t.UTC()}).Refresh("true").Do(ctx)
	}
	if err != nil {
		return fmt.Errorf("elastic: save checkpoint of %s: %w", dc, err)
	}
	return nil
}
