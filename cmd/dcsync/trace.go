package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
)

// trace prints the timeline of one request across datacenters.
func trace(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	a := auditFlags{readOnly: true}
	a.register(fs, getenv)
	fs.Usage = usageFunc(fs, "dcsync trace [flags] <request-id>",
		`DCSYNC_ELASTIC_API_KEY=... dcsync trace --elastic https://es.eu.internal:9200 --elastic-ca ca.pem 0190f0c4-6b2e-7c41-9a3e-5d1f2a3b4c5d`)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"trace takes one request ID"}
	}
	id := fs.Arg(0)
	cfg, err := a.config(stderr)
	if err != nil {
		return err
	}
	log, err := esaudit.NewReader(cfg) // reads only: no template, no spool
	if err != nil {
		return err
	}
	recs, err := log.Records(ctx, id)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("no audit records of request %s under %s", id, a.prefix)
	}
	printTimeline(stdout, id, recs)
	return nil
}

// printTimeline prints a header naming the write, then one line per record
// in the order they happened.
func printTimeline(w io.Writer, id string, recs []dcsync.Record) {
	first := recs[0]
	fmt.Fprintf(w, "request %s  origin %s  written %s\n", id, first.Origin, stamp(first.Written))
	for _, r := range recs {
		if r.Request != nil {
			fmt.Fprintf(w, "key %s  op %s  payload %d bytes\n", r.Request.Key, r.Request.Op, len(r.Request.Payload))
			break
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDC\tSTAGE\tSTATUS\tTARGET\tATTEMPT\tERROR")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", stamp(r.Time), r.DC, r.Stage, r.Status,
			dash(r.Target), r.Attempt, r.Error)
	}
	tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
