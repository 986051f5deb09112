package elastic

import (
	"context"
	"fmt"

	"github.com/dcsync/dcsync"
)

// Reader reads an audit log without writing anything to Elasticsearch or
// to disk: it installs no index template and opens no spool. Operators'
// tools use it; `dcsync trace` does.
type Reader struct{ l *Log }

// NewReader returns a Reader of the audit log cfg names. Only URLs,
// HTTPClient, ClientOptions, IndexPrefix, Timeout and Logger matter.
func NewReader(cfg Config) (*Reader, error) {
	cfg = cfg.withDefaults()
	if !validPrefix.MatchString(cfg.IndexPrefix) {
		return nil, fmt.Errorf("elastic: invalid IndexPrefix %q", cfg.IndexPrefix)
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Reader{l: &Log{cfg: cfg, prefix: cfg.IndexPrefix, client: client, log: cfg.Logger}}, nil
}

// Records returns every record of one write, from every datacenter, in the
// order they happened, as Log.Records does.
func (r *Reader) Records(ctx context.Context, id string) ([]dcsync.Record, error) {
	return r.l.Records(ctx, id)
}
