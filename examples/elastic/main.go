// Command elastic is the quickstart with its audit log in Elasticsearch: two
// datacenters, unicom and telecom, in one process over the memory transport
// with injected faults, logging every stage to Elasticsearch. It writes in
// both, prints what each stage recorded (read back from Elasticsearch), runs
// each datacenter's reconciler from the log, and checks from the processors'
// own state that every write reached every datacenter.
//
//	go run ./examples/elastic -elastic http://127.0.0.1:9200 -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	olivere "github.com/olivere/elastic/v7"

	"github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/demo"
)

func main() {
	o := options{elastic: os.Getenv("DCSYNC_ELASTIC_URL")}
	if o.elastic == "" {
		o.elastic = "http://127.0.0.1:9200"
	}
	flag.StringVar(&o.elastic, "elastic", o.elastic, "Elasticsearch URL (default $DCSYNC_ELASTIC_URL)")
	flag.StringVar(&o.prefix, "index-prefix", "dcsync-example", "index prefix of the audit log")
	o.run.Flags(flag.CommandLine)
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "elastic:", err)
		os.Exit(1)
	}
}

type options struct {
	elastic, prefix string
	run             demo.Run
}

// run runs the quickstart's demo.Run with its audit log in Elasticsearch:
// the reconcilers read the trails from there and keep their checkpoints
// there, and a flush waits until the records are searchable.
func run(ctx context.Context, out io.Writer, o options) error {
	audit, err := elastic.New(ctx, elastic.Config{URLs: []string{o.elastic}, IndexPrefix: o.prefix, Logger: demo.Quiet})
	if err != nil {
		return err
	}
	defer audit.Close()
	r := o.run
	r.Audit = audit
	r.Checkpoints = audit.Checkpoints()
	r.FlushAudit = audit.Flush
	r.PrintCounts = func(ctx context.Context, out io.Writer) error {
		return printCounts(ctx, out, audit.Client(), o.prefix)
	}
	return r.Converge(ctx, out)
}

// printCounts prints how many records each stage logged, per datacenter and
// outcome, with one aggregation over the audit indices.
func printCounts(ctx context.Context, out io.Writer, client *olivere.Client, prefix string) error {
	agg := olivere.NewCompositeAggregation().Size(100).Sources(
		olivere.NewCompositeAggregationTermsValuesSource("dc").Field("dc"),
		olivere.NewCompositeAggregationTermsValuesSource("stage").Field("stage"),
		olivere.NewCompositeAggregationTermsValuesSource("status").Field("status"))
	res, err := client.Search(prefix+"-*").Size(0).Aggregation("counts", agg).Do(ctx)
	if err != nil {
		return fmt.Errorf("count records: %w", err)
	}
	counts, _ := res.Aggregations.Composite("counts")
	for _, b := range counts.Buckets {
		fmt.Fprintf(out, "  %-8s %-8s %-6s %6d\n", b.Key["dc"], b.Key["stage"], b.Key["status"], b.DocCount)
	}
	return nil
}
