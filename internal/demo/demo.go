// Package demo holds what the runnable examples share: the two
// datacenters, a datacenter's stand-in database (also the recording
// processor of the RPC transports' tests), the writes they make, and Run,
// the quickstart's run on the memory transport.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/dcsync/dcsync"
	auditmem "github.com/dcsync/dcsync/audit/memory"
)

// Datacenters are the two datacenters of the examples.
var Datacenters = []string{"unicom", "telecom"}

// Other returns the other of the two Datacenters.
func Other(dc string) string {
	if dc == Datacenters[0] {
		return Datacenters[1]
	}
	return Datacenters[0]
}

// Quiet drops the library's log lines, so the output shows only the
// counts; a service would pass its own logger.
var Quiet = slog.New(slog.DiscardHandler)

// PrintCounts prints how many records each stage logged, per datacenter
// and outcome.
func PrintCounts(out io.Writer, audit *auditmem.Log) {
	var lines []string
	for k, n := range audit.Counts() {
		if n == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("  %-8s %-8s %-6s %6d", k.DC, k.Stage, k.Status, n))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
}

// Write makes n writes through s, the syncer of datacenter dc, to 100
// keys: "user:0" to "user:99", each payload naming dc and the write.
func Write(ctx context.Context, s *dcsync.Syncer, dc string, n int) error {
	for i := range n {
		req := &dcsync.Request{Key: fmt.Sprintf("user:%d", i%100), Op: "set",
			Payload: fmt.Appendf(nil, "%s-%d", dc, i)}
		if err := s.Write(ctx, req); err != nil {
			return err
		}
	}
	return nil
}

// WriteEverywhere makes n writes in each datacenter at once, so the
// datacenters sometimes write the same key concurrently.
func WriteEverywhere(ctx context.Context, syncers map[string]*dcsync.Syncer, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	for dc, s := range syncers {
		g.Go(func() error { return Write(ctx, s, dc, n) })
	}
	return g.Wait()
}
