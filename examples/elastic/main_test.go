package main

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/dcsync/dcsync/internal/demo"
	"github.com/dcsync/dcsync/internal/demo/demotest"
	"github.com/dcsync/dcsync/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }

func TestConvergesWithElasticsearchAudit(t *testing.T) {
	url := testserver.Elastic(t)
	demotest.Converges(t, func(ctx context.Context, out io.Writer, r demo.Run) error {
		return run(ctx, out, options{elastic: url, prefix: testserver.IndexPrefix(t, url), run: r})
	})
}
