// Command quickstart runs two datacenters, unicom and telecom, in one
// process on dcsync's embedded defaults: the memory transport with injected
// faults and the memory audit log. It writes in both, prints what each stage
// recorded, lets the reconcilers repair what the faults broke, and checks
// from the processors' own state that every write reached every datacenter.
//
// The run itself is internal/demo's Run, which examples/elastic shares with
// its audit log in Elasticsearch instead: read it there for the wiring of
// the Syncers and reconcilers.
//
//	go run ./examples/quickstart -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	auditmem "github.com/dcsync/dcsync/audit/memory"
	"github.com/dcsync/dcsync/internal/demo"
)

func main() {
	var r demo.Run
	r.Flags(flag.CommandLine)
	flag.Parse()
	if err := run(context.Background(), os.Stdout, r); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run runs r with the memory audit log: the embedded default, which reads
// its own writes at once and keeps the reconcilers' checkpoints in memory.
func run(ctx context.Context, out io.Writer, r demo.Run) error {
	audit := auditmem.New(0)
	r.Audit = audit
	r.PrintCounts = func(_ context.Context, out io.Writer) error {
		demo.PrintCounts(out, audit)
		return nil
	}
	return r.Converge(ctx, out)
}
