package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dcsync/dcsync/monitor"
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

// With -status, each datacenter's status page, metrics and readiness are
// served, and the run says where.
func TestQuickstartServesStatus(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, options{writes: 50, seed: 1, status: "127.0.0.1:0"}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "status page: http://127.0.0.1:") {
		t.Fatalf("no status page announced:\n%s", out.String())
	}

	out.Reset()
	stop, err := serveStatus("127.0.0.1:0", &out, map[string]*monitor.Monitor{
		"unicom": monitor.New("unicom", []string{"telecom"}), "telecom": monitor.New("telecom", []string{"unicom"})})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var base string
	if _, err := fmt.Sscanf(out.String(), "status page: %s", &base); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	base = strings.TrimSuffix(base, "/status/")
	for path, want := range map[string]string{"/status/": "telecom", "/metrics": "dcsync_", "/readyz": "ready"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.300s", path, res.StatusCode, want, body)
		}
	}
}
