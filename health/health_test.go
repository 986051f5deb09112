package health_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/hop"
	"github.com/dcsync/dcsync/internal/obstest"
	"github.com/dcsync/dcsync/monitor"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// Setup returns a mesh of a, b and c with c down, a's Monitor and a checker
// of a that deems a peer down at once.
func setup(t *testing.T) (*obstest.Mesh, *monitor.Monitor, *health.Checker) {
	mesh, mons := obstest.Monitored(t, "a", "b", "c")
	c, err := health.New(health.Config{Monitor: mons["a"], PeerDownAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return mesh, mons["a"], c
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestReadyFollowsPeer(t *testing.T) {
	mesh, _, c := setup(t)
	mux := http.NewServeMux()
	mux.Handle("/healthz", health.Live())
	mux.Handle("/readyz", c.Ready())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	reqs := mesh.Write(t, "a", 3)
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("all peers up: %d %q", code, body)
	}
	mesh.Down("c")
	if err := hop.Err(hop.Of(mesh.Syncers["a"]).Ship(context.Background(), "c", nil, reqs)); err == nil {
		t.Fatal("forward to a peer down succeeded")
	}
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "peer c down since") {
		t.Fatalf("peer c down: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz %d while not ready", code)
	}
	mesh.Net.SetFaults("a", "c", memtransport.Faults{})
	if err := hop.Err(hop.Of(mesh.Syncers["a"]).Ship(context.Background(), "c", nil, reqs)); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("peer c back: %d %q", code, body)
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c, err := health.New(health.Config{Monitor: monitor.New("a", nil), MaxBacklog: 10, MaxSpool: 5,
		ReconcileInterval: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ok := monitor.Snapshot{Started: now.Add(-time.Hour),
		Peers:  []monitor.Peer{{Name: "b", Backlog: 10, Down: true, DownSince: now.Add(-59 * time.Second)}},
		Audit:  &monitor.Audit{Pending: 5},
		Passes: []monitor.Pass{{Time: now.Add(-2 * time.Minute)}}}
	if st := c.Evaluate(ok); !st.Ready {
		t.Fatalf("not ready: %v", st.Reasons)
	}
	bad := ok
	bad.Peers = []monitor.Peer{{Name: "b", Backlog: 11, Down: true, DownSince: now.Add(-time.Minute)}}
	bad.Audit = &monitor.Audit{Pending: 6}
	bad.Passes = []monitor.Pass{{Time: now, Error: "leader lock: refused"}, {Time: now.Add(-4 * time.Minute)}}
	st := c.Evaluate(bad)
	if st.Ready || len(st.Reasons) != 4 {
		t.Fatalf("ready %v, reasons %q", st.Ready, st.Reasons)
	}
	for i, want := range []string{"peer b down", "peer b backlog 11", "audit spool holds 6", "no reconciler pass"} {
		if !strings.HasPrefix(st.Reasons[i], want) {
			t.Errorf("reason %d: %q, want %q...", i, st.Reasons[i], want)
		}
	}
	// Before any pass, the Monitor's start counts.
	fresh := monitor.Snapshot{Started: now.Add(-2 * time.Minute)}
	if st := c.Evaluate(fresh); !st.Ready {
		t.Errorf("fresh: %v", st.Reasons)
	}
}
