package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The run converges with faults severe enough to bite — 30% of deliveries
// and 20% of telecom's applies failing — and the reconciler, not luck, did
// the converging: writes were missing before it ran.
func TestQuickstartConverges(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, options{writes: 500, seed: 3, sendFail: 0.3, applyFail: 0.2}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"converged: 1000/1000 writes present in every datacenter", "reship   failed", "apply    failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "present in every datacenter: 1000/1000") {
		t.Errorf("everything arrived before reconciliation: the reconciler was not tested\n%s", text)
	}
}
