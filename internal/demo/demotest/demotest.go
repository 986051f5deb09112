// Package demotest is the test of the examples built on demo.Run.
package demotest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dcsync/dcsync/internal/demo"
)

// Converges calls run, the run function of an example, with faults severe
// enough to bite: 500 writes per datacenter, 30% of deliveries and 20% of
// telecom's applies failing. It fails t unless the output ends converged,
// shows failed reships and applies, and shows writes missing before
// reconciliation, so that the reconciler, not luck, did the converging.
func Converges(t *testing.T, run func(ctx context.Context, out io.Writer, r demo.Run) error) {
	t.Helper()
	r := demo.Run{Writes: 500, Seed: 3, SendFail: 0.3, ApplyFail: 0.2}
	var out bytes.Buffer
	if err := run(context.Background(), &out, r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	total := 2 * r.Writes
	if !strings.Contains(text, fmt.Sprintf("converged: %d/%d writes present in every datacenter", total, total)) {
		t.Fatalf("no convergence line:\n%s", text)
	}
	for _, want := range []string{"reship   failed", "apply    failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q: the faults did not bite\n%s", want, text)
		}
	}
	if strings.Contains(text, fmt.Sprintf("present in every datacenter: %d/%d", total, total)) {
		t.Errorf("everything arrived before reconciliation: the reconciler was not tested\n%s", text)
	}
}
