package main

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync/atomic"
	"time"
)

// stampSize is the head of every payload: the phase, the write's sequence
// number and the time it was written, so that whatever carries the payload
// to the peer, the peer's apply alone tells which write arrived and how
// late. The smallest payload is one stamp.
const stampSize = 24

// phaseIDs numbers phases across the whole run, so a late redelivery from
// an earlier phase is not counted in a later one.
var phaseIDs atomic.Uint64

// tracker stamps the payloads of one phase and records the first apply of
// each write at the peer.
type tracker struct {
	id        uint64
	n         int
	applied   atomic.Int64
	dups      atomic.Int64    // applies of a write already applied
	foreign   atomic.Int64    // applies of payloads not stamped by this phase
	lastApply atomic.Int64    // Unix nanoseconds of the latest first apply
	seen      []atomic.Uint64 // bit seq: seq applied
	lags      []atomic.Int64  // by seq: apply time − write time, ns
	done      chan struct{}   // closed when every write is applied
}

func newTracker(n int) *tracker {
	return &tracker{id: phaseIDs.Add(1), n: n, seen: make([]atomic.Uint64, (n+63)/64),
		lags: make([]atomic.Int64, n), done: make(chan struct{})}
}

// filler is what follows the stamp in a payload.
var filler = bytes.Repeat([]byte{'x'}, 4096)

// payload returns a payload of size bytes (at least stampSize) for write
// seq, stamped now.
func (t *tracker) payload(seq, size int) []byte {
	p := make([]byte, max(size, stampSize))
	binary.LittleEndian.PutUint64(p[0:], t.id)
	binary.LittleEndian.PutUint64(p[8:], uint64(seq))
	binary.LittleEndian.PutUint64(p[16:], uint64(time.Now().UnixNano()))
	copy(p[stampSize:], filler[:min(len(p)-stampSize, len(filler))])
	for n := stampSize + len(filler); n < len(p); n += copy(p[n:], p[stampSize:n]) {
	}
	return p
}

// apply records the arrival of a payload at the peer. Every system's
// peer-side processor calls it; it is safe for concurrent use.
func (t *tracker) apply(p []byte) {
	now := time.Now().UnixNano()
	if len(p) < stampSize || binary.LittleEndian.Uint64(p) != t.id {
		t.foreign.Add(1)
		return
	}
	seq := binary.LittleEndian.Uint64(p[8:])
	if seq >= uint64(t.n) {
		t.foreign.Add(1)
		return
	}
	bit := uint64(1) << (seq % 64)
	if t.seen[seq/64].Or(bit)&bit != 0 {
		t.dups.Add(1)
		return
	}
	t.lags[seq].Store(now - int64(binary.LittleEndian.Uint64(p[16:])))
	t.lastApply.Store(now)
	if t.applied.Add(1) == int64(t.n) {
		close(t.done)
	}
}

// latency holds percentiles of the replication lag, in milliseconds.
type latency struct {
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// latency returns the lag percentiles of the writes applied so far.
func (t *tracker) latency() latency {
	var lags []int64
	for seq := range t.n {
		if lag := t.lags[seq].Load(); lag != 0 {
			lags = append(lags, lag)
		}
	}
	if len(lags) == 0 {
		return latency{}
	}
	slices.Sort(lags)
	at := func(q float64) float64 {
		i := min(int(q*float64(len(lags))), len(lags)-1)
		return float64(lags[i]) / 1e6
	}
	return latency{P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: float64(lags[len(lags)-1]) / 1e6}
}
