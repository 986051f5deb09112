package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
)

// elasticStore is audit/elastic on the node of cfg.ElasticURL, on its
// defaults. Each datacenter of each phase writes its own indices, deleted
// when the phase ends; the node's CPU is accounted for, though other
// programs may share it.
var elasticStore = auditStore{name: "elastic",
	needs: func(cfg *Config) string {
		if cfg.ElasticURL == "" {
			return "no Elasticsearch (-elastic or DCSYNC_ELASTIC_URL)"
		}
		return ""
	},
	open: openElastic,
}

func openElastic(ctx context.Context, e *env, dc string) (dcsync.AuditLog, func(context.Context) error, error) {
	e.elasticOnce.Do(func() {
		if pid, err := elasticProcess(e.cfg.ElasticURL); err == nil {
			e.addProcess(process{name: "elasticsearch", pid: pid, shared: true})
		} else {
			e.note(fmt.Sprintf("Elasticsearch's CPU not counted: %v", err))
		}
	})
	prefix := fmt.Sprintf("dcsync-bench-%d-%d-%s", os.Getpid(), time.Now().UnixNano(), dc)
	log, err := esaudit.New(ctx, esaudit.Config{URLs: []string{e.cfg.ElasticURL}, IndexPrefix: prefix,
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: e.auditWire.dial, MaxIdleConnsPerHost: 16}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, nil, err
	}
	e.onClose(func() {
		_ = log.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = log.Client().DeleteIndex(prefix + "*").Do(ctx)
		_, _ = log.Client().IndexDeleteIndexTemplate(prefix).Do(ctx)
	})
	return log, log.Flush, nil
}
