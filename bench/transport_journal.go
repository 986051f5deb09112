package main

import (
	"context"
	"os"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/journal"
)

// journalWiring is another wiring with each Syncer writing ahead to a
// journal (package journal, default policy: fsync every second) in a
// directory of its own on the local disk, removed when the phase ends.
type journalWiring struct{ wiring }

func (w *journalWiring) config(ctx context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	cfg, err := w.wiring.config(ctx, e, cfg, other)
	if err != nil {
		return cfg, err
	}
	dir, err := os.MkdirTemp("", "dcsync-bench-journal-")
	if err != nil {
		return cfg, err
	}
	j, err := journal.Open(dir, journal.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return cfg, err
	}
	e.onClose(func() {
		_ = j.Close()
		_ = os.RemoveAll(dir)
	})
	cfg.Journal = j
	return cfg, nil
}
