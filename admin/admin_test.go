package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/admin"
	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/internal/obstest"
	"github.com/dcsync/dcsync/monitor"
)

// serve runs datacenters a, b and c with c down, after a wrote to both,
// and serves a's status page.
func serve(t *testing.T) *httptest.Server {
	mesh, mons := obstest.Monitored(t, "a", "b", "c")
	mesh.Down("c")
	mesh.Write(t, "a", 50)
	mesh.Write(t, "b", 20) // a measures b's lag
	mons["a"].AddSource(monitor.SourceFunc(func(_ context.Context, s *monitor.Snapshot) {
		s.Audit = &monitor.Audit{Appended: 100, Indexed: 90, Spooled: 10, Pending: 10}
	}))
	mons["a"].ReconcileDone(context.Background(), "a", dcsync.Report{Leader: true, Scanned: 50, Complete: 0, Failing: 50,
		From: time.Now().Add(-time.Hour), To: time.Now()}, nil)
	checker, err := health.New(health.Config{Monitor: mons["a"], PeerDownAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.Handler(admin.Config{Monitor: mons["a"], Health: checker,
		TraceURL: "http://traces.invalid/trace/{trace}"}))
	t.Cleanup(srv.Close)
	return srv
}

func TestStatusJSON(t *testing.T) {
	srv := serve(t)
	res, err := http.Get(srv.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.DC != "a" || st.Peer("c") == nil || !st.Peer("c").Down || st.Peer("b").Down || st.Health == nil || st.Health.Ready {
		t.Fatalf("status: %+v", st)
	}
	if len(st.Failing) != 50 || len(st.Passes) != 1 || st.Audit.Pending != 10 {
		t.Errorf("failing %d, passes %d, audit %+v", len(st.Failing), len(st.Passes), st.Audit)
	}
}

// TestStatusPageInBrowser renders the page in headless Chromium (installed
// by scripts/chromium.sh), keeps a screenshot, and reads the peers' states
// from the DOM the browser built.
func TestStatusPageInBrowser(t *testing.T) {
	bin := os.Getenv("DCSYNC_CHROMIUM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("no Chromium: run scripts/chromium.sh start (scripts/test.sh does) or set DCSYNC_CHROMIUM")
		}
	}
	srv := serve(t)
	dir := os.Getenv("DCSYNC_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-page.png")
	chromium(t, bin, "--screenshot="+shot, "--window-size=1400,1000", srv.URL+"/")
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10_000 {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	t.Logf("screenshot: %s", shot)

	dom := chromium(t, bin, "--dump-dom", srv.URL+"/")
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	var svgs int
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && attr(n, "class") == "peer" {
			states[attr(n, "data-peer")] = strings.Join(strings.Fields(text(n)), " ")
		}
		if n.Type == html.ElementNode && n.Data == "svg" && attr(n, "class") == "lag" {
			svgs++
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if !strings.HasPrefix(states["c"], "c down since") {
		t.Errorf("peer c shows %q, want down", states["c"])
	}
	if !strings.HasPrefix(states["b"], "b up") {
		t.Errorf("peer b shows %q, want up", states["b"])
	}
	if svgs != 2 {
		t.Errorf("%d lag charts, want 2", svgs)
	}
	if !strings.Contains(dom, "not ready: peer c down since") {
		t.Error("the page does not say the datacenter is not ready")
	}
}

// chromium runs headless Chromium with args and returns its output.
func chromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data + " "
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.Data == "svg" {
			continue
		}
		b.WriteString(text(c))
	}
	return b.String()
}
