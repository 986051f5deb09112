package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	"github.com/dcsync/dcsync/internal/testserver"
)

// outage is how long Elasticsearch is gone in TestElasticsearchOutage.
const outage = 30 * time.Second

// Elasticsearch, where every datacenter logs its audit records, is gone
// for 30 s while both datacenters of an HTTP pair and of a gRPC pair go
// on writing: their logs spool to disk. The test cuts only its own proxy
// to the node, so other packages' tests using the same node are not
// hurt. Once it is back, every acknowledged write is applied in both
// datacenters, no key diverged, and no audit record is lost: Elasticsearch
// holds the process record of every acknowledged write from its origin
// and the apply record from its peer.
func TestElasticsearchOutage(t *testing.T) {
	es := testserver.Elastic(t)
	p := testserver.NewProxy(t, es)
	type run struct {
		a, b         *datacenter
		prefix       string
		ackedA, ackB []string
	}
	var runs []*run
	for _, tr := range []string{"http", "grpc"} {
		prefix := testserver.IndexPrefix(t, es)
		a, b := pair(t, tr, "-elastic", p.URL(), "-index-prefix", prefix)
		runs = append(runs, &run{a: a, b: b, prefix: prefix})
	}
	write := func() {
		for _, r := range runs {
			r.ackedA = append(r.ackedA, r.a.write(100, 0, nil)...)
			r.ackB = append(r.ackB, r.b.write(100, 0, nil)...)
		}
	}
	write()
	p.Cut()
	for end := time.Now().Add(outage); time.Now().Before(end); {
		write()
		time.Sleep(500 * time.Millisecond)
	}
	p.Restore()
	write()
	for _, r := range runs {
		converge(t, append(r.ackedA, r.ackB...), r.a, r.b)
	}
	for _, r := range runs {
		reader, err := esaudit.New(context.Background(), esaudit.Config{URLs: []string{es}, IndexPrefix: r.prefix,
			SpoolDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reader.Close() })
		for _, c := range []struct {
			dc, origin string
			stage      dcsync.Stage
			acked      []string
		}{
			{"unicom", "unicom", dcsync.StageProcess, r.ackedA},
			{"telecom", "unicom", dcsync.StageApply, r.ackedA},
			{"telecom", "telecom", dcsync.StageProcess, r.ackB},
			{"unicom", "telecom", dcsync.StageApply, r.ackB},
		} {
			logged(t, reader, dcsync.SetQuery{DC: c.dc, Origin: c.origin, Stage: c.stage, Status: dcsync.StatusOK}, c.acked)
		}
		for _, d := range []*datacenter{r.a, r.b} {
			// Each spooled records during the outage and replayed them,
			// and none was lost or refused.
			log := d.stderr.String()
			if !strings.Contains(log, "replaying spooled audit records") ||
				strings.Contains(log, "audit records lost") || strings.Contains(log, "audit record refused") {
				t.Errorf("%s over %s did not spool and replay its records cleanly:\n%s", d.name, d.transport, log)
			}
		}
	}
}

// logged waits until the log holds a record selected by q for every ID of
// acked: the spools of the datacenters replay within a second or so of
// Elasticsearch's return.
func logged(t *testing.T, log dcsync.AuditLog, q dcsync.SetQuery, acked []string) {
	t.Helper()
	q.From, q.To = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		ids, err := log.IDs(ctx, q)
		missing := len(acked)
		if err == nil {
			have := make(map[string]bool, len(ids))
			for _, id := range ids {
				have[id] = true
			}
			missing = 0
			for _, id := range acked {
				if !have[id] {
					missing++
				}
			}
			if missing == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s records at %s of writes from %s: %d of %d acknowledged writes missing (last error %v)",
				q.Stage, q.DC, q.Origin, missing, len(acked), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
