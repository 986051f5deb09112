package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/testserver"
)

// The fault suite: each datacenter is a faultsvc process of its own,
// killed with SIGKILL at the worst moments and started again over the same
// journal and state. After restarts every write whose Write returned nil
// is applied in every datacenter, and every key holds the same winner
// everywhere, with no reconciler: the journal re-drives what the peer did
// not acknowledge, at start and every second.

var binary string // the faultsvc binary, built once by TestMain

// buildFlags build the binary; with -race when the tests run with it.
var buildFlags = []string{"build"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faultsvc")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "faultsvc")
	out, err := exec.Command("go", append(buildFlags, "-o", binary, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build faultsvc: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := testserver.ElasticMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// timeout bounds every wait of a scenario; generous, for a loaded machine.
const timeout = 90 * time.Second

// datacenter is one faultsvc process and what outlives it: its listeners
// (held by the test, inherited by each process) and its directory.
type datacenter struct {
	t                  *testing.T
	name, peer         string
	transport, dir     string
	args               []string // more flags
	collector, control *net.TCPListener
	peerAddr           string
	cmd                *exec.Cmd
	stderr             *syncBuffer
	exited             chan struct{}
}

func listen(t *testing.T) *net.TCPListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// pair returns the two datacenters over transport, started with args.
func pair(t *testing.T, transport string, args ...string) (a, b *datacenter) {
	a = &datacenter{t: t, name: "unicom", peer: "telecom", transport: transport, dir: t.TempDir(),
		args: args, collector: listen(t), control: listen(t)}
	b = &datacenter{t: t, name: "telecom", peer: "unicom", transport: transport, dir: t.TempDir(),
		args: args, collector: listen(t), control: listen(t)}
	a.peerAddr, b.peerAddr = b.collector.Addr().String(), a.collector.Addr().String()
	a.start()
	b.start()
	return a, b
}

func (d *datacenter) start() {
	t := d.t
	t.Helper()
	cf, err := d.collector.File()
	if err != nil {
		t.Fatal(err)
	}
	kf, err := d.control.File()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	defer kf.Close()
	d.stderr = &syncBuffer{}
	d.cmd = exec.Command(binary, append([]string{"-dc", d.name, "-peer", d.peer, "-peer-addr", d.peerAddr,
		"-transport", d.transport, "-dir", d.dir}, d.args...)...)
	d.cmd.ExtraFiles = []*os.File{cf, kf}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(d.kill)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if _, err := d.state(ctx); err == nil {
			return
		}
		select {
		case <-d.exited:
			t.Fatalf("%s exited: %s", d.name, d.stderr)
		case <-ctx.Done():
			t.Fatalf("%s not serving: %s", d.name, d.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *datacenter) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.cmd = nil
}

func (d *datacenter) url(path string) string { return "http://" + d.control.Addr().String() + path }

type state struct {
	Applied    []string
	Digest     string
	ShipFailed uint64
}

func (d *datacenter) state(ctx context.Context) (state, error) {
	var st state
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.url("/state"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// write asks d for n writes and returns the IDs it acknowledged; after the
// first at of them it calls then (once), and it returns early, with the
// IDs read so far, when the process dies.
func (d *datacenter) write(n, at int, then func()) []string {
	t := d.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.url(fmt.Sprintf("/write?n=%d&prefix=%s", n, d.name)), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ids []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatalf("%s: %s", d.name, line)
		}
		ids = append(ids, line)
		if len(ids) == at && then != nil {
			then()
		}
	}
	return ids
}

// converge waits until every ID of acked is applied in both datacenters
// and they agree on every key.
func converge(t *testing.T, acked []string, dcs ...*datacenter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := "no answer yet" // the latest reason not to have converged
	for {
		why := ""
		var digests []string
		for _, d := range dcs {
			st, err := d.state(ctx)
			if err != nil {
				why = fmt.Sprintf("%s: %v", d.name, err)
				break
			}
			have := make(map[string]bool, len(st.Applied))
			for _, id := range st.Applied {
				have[id] = true
			}
			missing := 0
			for _, id := range acked {
				if !have[id] {
					missing++
				}
			}
			if missing > 0 {
				why += fmt.Sprintf("%s misses %d of %d acknowledged writes; ", d.name, missing, len(acked))
			}
			digests = append(digests, st.Digest)
		}
		if why == "" && len(digests) == len(dcs) && digests[0] == digests[1] {
			return
		}
		if why == "" {
			why = fmt.Sprintf("digests differ: %v", digests)
		}
		if ctx.Err() == nil {
			last = why
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not converged: %s\n%s: %s\n%s: %s", last, dcs[0].name, dcs[0].stderr, dcs[1].name, dcs[1].stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// overBoth runs scenario over HTTP and over gRPC, each time on a fresh
// pair of datacenters, unicom (a) and telecom (b).
func overBoth(t *testing.T, scenario func(t *testing.T, a, b *datacenter)) {
	for _, tr := range []string{"http", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			a, b := pair(t, tr)
			scenario(t, a, b)
		})
	}
}

// The origin dies right after Write returned for its writes, with more
// under way: the journal brings every acknowledged one to the peer.
func TestKillOriginAfterAcknowledgedWrites(t *testing.T) {
	overBoth(t, func(t *testing.T, a, b *datacenter) {
		acked := b.write(200, 0, nil)
		acked = append(acked, a.write(3000, 1000, a.kill)...)
		a.start()
		converge(t, acked, a, b)
	})
}

// The peer is down while the origin acknowledges writes, then the origin
// dies too: nothing but the origin's journal holds those writes. Both
// come back and the peer gets every one, the failure the issue measured
// at 1.5% lost.
func TestKillOriginWhilePeerIsDown(t *testing.T) {
	overBoth(t, func(t *testing.T, a, b *datacenter) {
		b.kill()
		acked := a.write(500, 0, nil)
		a.kill()
		b.start()
		a.start()
		converge(t, acked, a, b)
	})
}

// The receiver dies in the middle of a stream of batches and comes back;
// the origin, still up, delivers what it missed: its sender's retries,
// then its journal's redrive for what they gave up, with no reconciler.
func TestKillReceiverMidStream(t *testing.T) {
	overBoth(t, func(t *testing.T, a, b *datacenter) {
		acked := a.write(2000, 500, b.kill)
		// Let the origin's senders give some writes up, so that only the
		// journal's redrive can deliver them.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for {
			st, err := a.state(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.ShipFailed > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.start()
		converge(t, acked, a, b)
	})
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
