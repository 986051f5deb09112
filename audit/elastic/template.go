package elastic

import (
	"context"
	"fmt"

	"github.com/olivere/elastic/v7"
)

// templateVersion changes whenever the template does, so an operator can
// tell which one an index was made with.
const templateVersion = 4

// recordMapping is the explicit mapping of an entry's document: keywords
// to filter on, dates with the nanoseconds Go keeps — the first and last
// written of its writes, by which a trace finds the IDs dcsync makes —, the
// request IDs a trace cannot find by time as keywords, and the rest —
// count, hash sum, the writes packed, and the requests of a process entry —
// stored but not indexed. dynamic=strict turns a field the mapping does
// not know into an indexing error rather than a silent new field. The IDs
// keep no doc values: they are only searched by term, never sorted or
// aggregated on.
var recordMapping = map[string]any{
	"dynamic": "strict",
	"properties": map[string]any{
		"dc":      map[string]any{"type": "keyword"},
		"origin":  map[string]any{"type": "keyword"},
		"stage":   map[string]any{"type": "keyword"},
		"status":  map[string]any{"type": "keyword"},
		"target":  map[string]any{"type": "keyword"},
		"attempt": map[string]any{"type": "integer"},
		"error":   map[string]any{"type": "text"},
		"written": map[string]any{"type": "date_nanos"},
		"last":    map[string]any{"type": "date_nanos"},
		"time":    map[string]any{"type": "date_nanos"},
		"ids":     map[string]any{"type": "keyword", "doc_values": false},
		"x":       map[string]any{"type": "object", "enabled": false},
	},
}

// template returns the index template of the daily indices. The indices are
// sorted on disk by written, the order Trails reads them in, so a page of a
// window stops after the documents it returns instead of sorting every
// document of the rest of the window. The priority grows with the prefix, so that of two overlapping
// patterns ("a-*", "a-b-*") the more specific one wins instead of the two
// being rejected as ambiguous.
func (l *Log) template() map[string]any {
	index := map[string]any{
		"number_of_shards":    l.cfg.Shards,
		"number_of_replicas":  l.cfg.Replicas,
		"translog.durability": l.cfg.TranslogDurability,
		"sort.field":          []string{"written"},
		"sort.order":          []string{"asc"},
	}
	if l.cfg.RefreshInterval > 0 {
		index["refresh_interval"] = l.cfg.RefreshInterval.String()
	}
	return map[string]any{
		"index_patterns": []string{l.prefix + "-*"},
		"priority":       len(l.prefix),
		"version":        templateVersion,
		"_meta":          map[string]any{"managed_by": "dcsync"},
		"template": map[string]any{
			"settings": map[string]any{"index": index},
			"mappings": recordMapping,
			"aliases":  map[string]any{l.prefix: map[string]any{}},
		},
	}
}

// checkpointMapping is the mapping of the checkpoint index: one document
// per datacenter, named after it.
var checkpointMapping = map[string]any{
	"dynamic": "strict",
	"properties": map[string]any{
		"dc":         map[string]any{"type": "keyword"},
		"checkpoint": map[string]any{"type": "date_nanos"},
	},
}

// install puts the index template and creates the checkpoint index. Both
// are idempotent: every Log of a deployment installs them at start.
func (l *Log) install(ctx context.Context) error {
	if _, err := l.client.IndexPutIndexTemplate(l.prefix).BodyJson(l.template()).Do(ctx); err != nil {
		return fmt.Errorf("elastic: put index template %s: %w", l.prefix, err)
	}
	// A daily index made by an earlier template (today's, at an upgrade)
	// would refuse the fields added since under its strict mapping: add
	// them. Adding fields to a mapping is always allowed.
	if _, err := l.client.PutMapping().Index(l.prefix + "-*").AllowNoIndices(true).
		BodyJson(map[string]any{"properties": recordMapping["properties"]}).Do(ctx); err != nil {
		return fmt.Errorf("elastic: update mappings of %s-*: %w", l.prefix, err)
	}
	index := l.checkpointIndex()
	exists, err := l.client.IndexExists(index).Do(ctx)
	if err != nil {
		return fmt.Errorf("elastic: check index %s: %w", index, err)
	}
	if exists {
		return nil
	}
	_, err = l.client.CreateIndex(index).BodyJson(map[string]any{
		"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": l.cfg.Replicas},
		"mappings": checkpointMapping,
	}).Do(ctx)
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("elastic: create index %s: %w", index, err)
	}
	return nil
}

// isAlreadyExists reports whether err is Elasticsearch's answer to creating
// an index that another process created first.
func isAlreadyExists(err error) bool {
	e, ok := err.(*elastic.Error)
	return ok && e.Details != nil && e.Details.Type == "resource_already_exists_exception"
}

func (l *Log) checkpointIndex() string { return l.prefix + "_checkpoints" }
