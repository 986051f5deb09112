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
	"sync"
	"testing"
	"time"
)

// elastic is the Elasticsearch this test process started, if any.
var elastic struct {
	once sync.Once
	url  string
	run  string // its run directory, for scripts/elastic.sh stop
	err  error
}

// Elastic returns the URL of the Elasticsearch the tests use:
// DCSYNC_ELASTIC_URL when it is set (scripts/test.sh starts one for every
// package), or else one that scripts/elastic.sh starts for this test
// process, once, on a free loopback port; ElasticMain stops it. The test
// fails when none can be had.
func Elastic(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("DCSYNC_ELASTIC_URL"); u != "" {
		return u
	}
	elastic.once.Do(startElastic)
	if elastic.err != nil {
		t.Fatalf("Elasticsearch: %v", elastic.err)
	}
	return elastic.url
}

// ElasticMain runs the tests of m and then stops the Elasticsearch that
// Elastic started, if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.ElasticMain(m)) }
func ElasticMain(m *testing.M) int {
	code := m.Run()
	if elastic.run != "" {
		if err := elasticScript(context.Background(), elastic.run, nil, "stop"); err != nil {
			fmt.Fprintln(os.Stderr, "testserver: stop Elasticsearch:", err)
		}
		_ = os.RemoveAll(elastic.run)
	}
	return code
}

func startElastic() {
	run, err := os.MkdirTemp("", "dcsync-elastic-")
	if err != nil {
		elastic.err = err
		return
	}
	elastic.run = run
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port, for Elasticsearch's HTTP
	if err != nil {
		elastic.err = err
		return
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var out bytes.Buffer
	if elastic.err = elasticScript(context.Background(), run, &out, "start", "DCSYNC_ELASTIC_PORT="+port); elastic.err != nil {
		return
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "export DCSYNC_ELASTIC_URL="); ok {
			elastic.url = u
		}
	}
	if elastic.url == "" {
		elastic.err = fmt.Errorf("scripts/elastic.sh start printed no URL: %q", out.String())
	}
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
