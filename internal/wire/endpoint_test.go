package wire

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

type nopCollector struct{}

func (nopCollector) Collect(context.Context, string, []*dcsync.Request) error { return nil }

// A flood of refusals logs one line per code, not one per refusal; the
// next line says how many were not logged.
func TestRefusalsRateLimited(t *testing.T) {
	var out bytes.Buffer // Refused logs on the caller's goroutine
	e, err := NewEndpoint(nopCollector{}, EndpointConfig{Secrets: map[string][]byte{"unicom": []byte("0123456789abcdef")},
		Log: slog.New(slog.NewTextHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0)
	e.now = func() time.Time { return at }
	for range 1000 {
		e.Refused("192.0.2.1:1", "unicom", &Results{Code: Code_CODE_UNAUTHENTICATED, Message: "bad signature"})
		e.Refused("192.0.2.1:1", strings.Repeat("x", 1000), &Results{Code: Code_CODE_INVALID, Message: "malformed"})
		e.Refused("192.0.2.1:1", "unicom", &Results{Code: Code_CODE_OK})
	}
	lines := strings.Count(out.String(), "\n")
	if lines != 2 || strings.Contains(out.String(), strings.Repeat("x", 200)) {
		t.Fatalf("%d lines logged:\n%s", lines, out.String())
	}
	if n := e.limits[Code_CODE_UNAUTHENTICATED].dropped.Load(); n != 999 {
		t.Fatalf("%d counted as not logged, want 999", n)
	}
	at = at.Add(time.Second)
	e.Refused("192.0.2.1:1", "unicom", &Results{Code: Code_CODE_UNAUTHENTICATED, Message: "bad signature"})
	if !strings.Contains(out.String(), "not_logged_since_last=999") {
		t.Fatalf("the next line does not count the others:\n%s", out.String())
	}
}
