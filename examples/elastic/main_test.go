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

func TestConvergesWithElasticsearchAudit(t *testing.T) {
	url := testserver.Elastic(t)
	var out bytes.Buffer
	o := options{elastic: url, prefix: testserver.IndexPrefix(t, url), writes: 500, seed: 3, sendFail: 0.3, applyFail: 0.2}
	if err := run(context.Background(), &out, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	if !strings.Contains(text, "converged: 1000/1000 writes present in every datacenter") {
		t.Fatalf("no convergence line:\n%s", text)
	}
	for _, want := range []string{"reship   failed", "apply    failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q: the faults did not bite\n%s", want, text)
		}
	}
	if strings.Contains(text, "present in every datacenter: 1000/1000") {
		t.Errorf("everything arrived before reconciliation: the reconciler was not tested\n%s", text)
	}
}
