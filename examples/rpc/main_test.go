package main

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// proc is one datacenter's process.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its standard output, line by line
}

func start(t *testing.T, bin, dc, transport string, writes int) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-dc", dc, "-transport", transport, "-listen", "127.0.0.1:0", "-peer", "stdin",
		"-n", fmt.Sprint(writes), "-timeout", "90s", "-compress="+fmt.Sprint(transport == "grpc"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testWriter{t: t, prefix: dc + ": "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// expect returns the next output line, which must start with prefix.
func (p *proc) expect(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("%s: got %q (open %v), want a line starting %q", p.cmd.Args[2], line, ok, prefix)
		}
		return line
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s: no %q line", p.cmd.Args[2], prefix)
	}
	return ""
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The two datacenters run as two processes, write in both, and end with
// every write of both applied in each and the same value for every key.
func TestTwoProcesses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rpc")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const writes = 2000
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			unicom := start(t, bin, "unicom", transport, writes)
			telecom := start(t, bin, "telecom", transport, writes)
			ua := strings.TrimPrefix(unicom.expect(t, "listening "), "listening ")
			ta := strings.TrimPrefix(telecom.expect(t, "listening "), "listening ")
			fmt.Fprintln(unicom.stdin, ta)
			fmt.Fprintln(telecom.stdin, ua)
			us := unicom.expect(t, "state ")
			ts := telecom.expect(t, "state ")
			t.Log(us)
			t.Log(ts)
			want := fmt.Sprintf("applied=%d keys=100 digest=", 2*writes)
			if !strings.Contains(us, want) || !strings.Contains(ts, want) {
				t.Fatalf("want %q in both", want)
			}
			if digest(us) != digest(ts) {
				t.Fatalf("the datacenters differ: %s vs %s", digest(us), digest(ts))
			}
			for _, p := range []*proc{unicom, telecom} {
				_ = p.stdin.Close()
			}
			for _, p := range []*proc{unicom, telecom} {
				if err := p.cmd.Wait(); err != nil {
					t.Fatalf("%s exited: %v", p.cmd.Args[2], err)
				}
			}
		})
	}
}

func digest(state string) string {
	_, d, _ := strings.Cut(state, "digest=")
	return d
}
