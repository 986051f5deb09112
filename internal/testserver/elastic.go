package testserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Elastic returns the URL of the Elasticsearch the tests use, from
// DCSYNC_ELASTIC_URL: scripts/test.sh sets it, and ElasticMain sets it when
// it starts one itself. The test fails when it is not set.
func Elastic(t testing.TB) string {
	t.Helper()
	u := os.Getenv("DCSYNC_ELASTIC_URL")
	if u == "" {
		t.Fatal("DCSYNC_ELASTIC_URL not set: call testserver.ElasticMain from TestMain, or run scripts/elastic.sh start")
	}
	return u
}

// ElasticMain runs the tests, examples and benchmarks of m with an
// Elasticsearch. When DCSYNC_ELASTIC_URL is set (scripts/test.sh starts
// one for every package), it uses that one; otherwise it starts one with
// scripts/elastic.sh on a free loopback port, sets DCSYNC_ELASTIC_URL for
// the tests, and stops it when they end. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }
func ElasticMain(m *testing.M) int {
	if os.Getenv("DCSYNC_ELASTIC_URL") != "" {
		return m.Run()
	}
	run, err := os.MkdirTemp("", "dcsync-elastic-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		return 1
	}
	defer os.RemoveAll(run)
	defer func() {
		if err := elasticScript(context.Background(), run, nil, "stop"); err != nil {
			fmt.Fprintln(os.Stderr, "testserver: stop Elasticsearch:", err)
		}
	}()
	url, err := startElastic(run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver: Elasticsearch:", err)
		return 1
	}
	os.Setenv("DCSYNC_ELASTIC_URL", url)
	return m.Run()
}

// startElastic starts Elasticsearch with its files in run and returns its
// URL.
func startElastic(run string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port, for Elasticsearch's HTTP
	if err != nil {
		return "", err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var out bytes.Buffer
	if err := elasticScript(context.Background(), run, &out, "start", "DCSYNC_ELASTIC_PORT="+port); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "export DCSYNC_ELASTIC_URL="); ok {
			return u, nil
		}
	}
	return "", fmt.Errorf("scripts/elastic.sh start printed no URL: %q", out.String())
}

// elasticScript runs scripts/elastic.sh with the run directory run, its
// stdout to out and its stderr to ours.
func elasticScript(ctx context.Context, run string, out *bytes.Buffer, args ...string) error {
	script, err := repoFile("scripts/elastic.sh")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // the first start downloads it
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, args[0])
	cmd.Env = append(os.Environ(), "DCSYNC_ELASTIC_RUN="+run)
	cmd.Env = append(cmd.Env, args[1:]...)
	if out != nil {
		cmd.Stdout = out
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/elastic.sh %s: %w", args[0], err)
	}
	return nil
}

// repoFile finds name relative to the root of the module, looking up from
// the working directory, which go test sets to the package's.
func repoFile(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, name), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s: no go.mod above the working directory", name)
		}
		dir = parent
	}
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// IndexPrefix returns an index prefix that no other test uses, and deletes
// the indices and the template under it when the test ends.
func IndexPrefix(t testing.TB, url string) string {
	t.Helper()
	name := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "t-" + name + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		for _, path := range []string{"/" + prefix + "-*," + prefix + "_checkpoints?ignore_unavailable=true", "/_index_template/" + prefix} {
			req, _ := http.NewRequest(http.MethodDelete, url+path, nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
	})
	return prefix
}
