package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTicks is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// which is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSelf returns the CPU time, user and system, of this process and of
// its children that have been waited for (redis-benchmark).
func cpuSelf() (self, children time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return self, children
}

// cpuOf returns the CPU time, user and system, of another process, from
// /proc/<pid>/stat; 0 when it cannot be read.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, may hold spaces; the fields after it don't.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // utime and stime are fields 14 and 15: f[11], f[12]
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// procStatus returns a field of /proc/<pid>/status in bytes ("VmHWM",
// "VmRSS"); pid 0 means this process. 0 when it cannot be read.
func procStatus(pid int, field string) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10
	}
	return 0
}

// resetPeakRSS resets this process's VmHWM to its current RSS, so that a
// phase's peak is its own; it reports whether the kernel allowed it.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// heapSys reads the bytes of heap the runtime holds from the OS and has
// not released back (runtime.MemStats HeapSys − HeapReleased), without
// stopping the world: released pages from an earlier phase don't count.
type heapSys struct{ samples []metrics.Sample }

func newHeapSys() *heapSys {
	names := []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes"}
	h := &heapSys{samples: make([]metrics.Sample, len(names))}
	for i, n := range names {
		h.samples[i].Name = n
	}
	return h
}

func (h *heapSys) read() int64 {
	metrics.Read(h.samples)
	var n uint64
	for _, s := range h.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return int64(n)
}

// wireCounter counts the TCP payload bytes, both directions, of the
// connections it wraps. Wrap one end of each connection only.
type wireCounter struct{ n atomic.Int64 }

func (w *wireCounter) bytes() int64 { return w.n.Load() }

// conn wraps c.
func (w *wireCounter) conn(c net.Conn) net.Conn { return &countedConn{Conn: c, n: &w.n} }

// listener wraps every connection l accepts.
func (w *wireCounter) listener(l net.Listener) net.Listener { return &countedListener{l, w} }

// dial dials and wraps the connection, for clients that take a dialer.
func (w *wireCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return w.conn(c), nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

type countedListener struct {
	net.Listener
	w *wireCounter
}

func (l *countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.w.conn(c), nil
}

// loadAverage returns the first line of /proc/loadavg's three averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the model name of the first CPU in /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
