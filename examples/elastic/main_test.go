package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dcsync/dcsync/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }

// With 30% of deliveries failing, writes are missing until the reconcilers,
// reading the trails from Elasticsearch, repair them.
func TestConvergesWithElasticsearchAudit(t *testing.T) {
	url := testserver.Elastic(t)
	o := options{elastic: url, prefix: testserver.IndexPrefix(t, url), writes: 500, sendFail: 0.3}
	var out bytes.Buffer
	if err := run(context.Background(), &out, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"converged: 1000/1000 writes present in every datacenter", "reship   failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "present in every datacenter: 1000/1000") {
		t.Errorf("everything arrived before reconciliation: the reconciler was not tested\n%s", text)
	}
}
