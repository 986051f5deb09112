package hop_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/hop"
)

// BenchmarkCollect compares, per write, the collect hop handing a batch of
// 256 on with the Collector applying it through a Processor that does
// nothing: the two share their body, so the hop's per-request admission
// and its result slice are what differs.
func BenchmarkCollect(b *testing.B) {
	const batch = 256
	noop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })
	next := func(context.Context, []*dcsync.Request) []error { return nil }
	for _, c := range []struct {
		name    string
		collect func(s *dcsync.Syncer, reqs []*dcsync.Request) error
	}{
		{"Collector", func(s *dcsync.Syncer, reqs []*dcsync.Request) error {
			return s.Collector().Collect(context.Background(), "telecom", reqs)
		}},
		{"hop", func(s *dcsync.Syncer, reqs []*dcsync.Request) error {
			return hop.Err(hop.Of(s).Collect(context.Background(), "telecom", reqs, nil, next))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := syncer(b, noop, &sender{}, nil)
			reqs := make([]*dcsync.Request, batch)
			base := stamped("telecom", "")
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range reqs {
					r := *base
					r.ID = "w" + strconv.Itoa(n)
					n++
					reqs[i] = &r
				}
				if err := c.collect(s, reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/write")
		})
	}
}
