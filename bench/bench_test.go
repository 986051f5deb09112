package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestShortRun runs the command's short mode over every target this
// machine can run, and checks that each one carried every write to the
// peer and that the JSON report reads back whole. It asserts no timing:
// the figures of a shared machine are not a test's business.
// runShort runs cfg shortened and logs its table.
func runShort(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.shorten()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	return rep
}

func TestShortRun(t *testing.T) {
	cfg := Config{ElasticURL: os.Getenv("DCSYNC_ELASTIC_URL")}
	rep := runShort(t, cfg)

	ran := 0
	for _, res := range rep.Results {
		if res.Skipped != "" {
			t.Logf("%s skipped: %s", res.Name, res.Skipped)
			continue
		}
		ran++
		phases := []*Phase{res.Full}
		if res.Kind != kindCeiling {
			phases = append(phases, res.Rate)
		}
		for i, p := range phases {
			switch {
			case p == nil:
				t.Errorf("%s: phase %d did not run", res.Name, i)
			case p.Error != "":
				t.Errorf("%s: %s", res.Name, p.Error)
			case p.Applied != int64(p.Writes) || p.Writes == 0:
				t.Errorf("%s: peer applied %d of %d writes", res.Name, p.Applied, p.Writes)
			case res.Kind != kindCeiling && p.Lag == nil:
				t.Errorf("%s: no lag measured", res.Name)
			}
		}
	}
	// Memory, HTTP and gRPC need nothing but this process, and neither do
	// the hand-rolled baseline and the RPC ceilings.
	if ran < 7 {
		t.Errorf("%d targets ran, want at least 7", ran)
	}

	path := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON report does not read back: %v", err)
	}
	if len(back.Results) != len(rep.Results) || back.Config.N != rep.Config.N || back.Machine.Cores == 0 {
		t.Errorf("JSON report read back as %d results, n %d, %d cores; want %d results, n %d",
			len(back.Results), back.Config.N, back.Machine.Cores, len(rep.Results), rep.Config.N)
	}
	for i, res := range back.Results {
		if res.Name != rep.Results[i].Name || (res.Full == nil) != (rep.Results[i].Full == nil) {
			t.Errorf("JSON result %d is %+v, want %+v", i, res, rep.Results[i])
		}
	}
}

// TestShortWAN runs the WAN phase briefly over HTTP and gRPC and checks
// that every row ran, and that WaitAll across a 10 ms line takes at least
// its round trip (a bound the line guarantees, not a timing assertion).
func TestShortWAN(t *testing.T) {
	cfg := Config{Only: []string{"wan/http", "wan/grpc"}, WAN: []time.Duration{0, 10 * time.Millisecond}}
	rep := runShort(t, cfg)
	if len(rep.Results) != 0 || len(rep.WAN) != 4 {
		t.Fatalf("%d results and %d WAN rows, want 0 and 4", len(rep.Results), len(rep.WAN))
	}
	for _, w := range rep.WAN {
		if len(w.Errors) > 0 || w.WritesPerSec <= 0 || w.LagP50 <= 0 || w.WaitAllP50 <= 0 {
			t.Errorf("%+v", w)
		}
		if w.WaitAllP50 < 2*w.DelayMS {
			t.Errorf("%s: WaitAll p50 %.1f ms across %v ms each way", w.Transport, w.WaitAllP50, w.DelayMS)
		}
	}
}
