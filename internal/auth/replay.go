package auth

import (
	"fmt"
	"sync"
)

// replayCache remembers the nonces of one peer's recent stamps until their
// timestamp is beyond the skew window (they are refused as stale from then
// on), at most max of them. A min-heap on timestamps finds the nonces to
// forget: the oldest, whatever the order they arrived in, so one stamp
// dated ahead holds nothing else back.
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[[NonceSize]byte]struct{}
	heap  []replayEntry // min-heap on ts
	floor int64         // stamps at or before floor are refused: their nonce may be forgotten
}

type replayEntry struct {
	ts    int64
	nonce [NonceSize]byte
}

func (c *replayCache) add(st *Stamp, cutoff int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[[NonceSize]byte]struct{}{}
	}
	for len(c.heap) > 0 && c.heap[0].ts < cutoff {
		c.pop()
	}
	if st.Timestamp <= c.floor {
		return ErrBusy
	}
	if _, ok := c.seen[st.Nonce]; ok {
		return fmt.Errorf("%w from %s", ErrReplay, st.From)
	}
	for len(c.heap) >= c.max {
		c.floor = max(c.floor, c.heap[0].ts)
		c.pop()
		if st.Timestamp <= c.floor {
			return ErrBusy
		}
	}
	c.seen[st.Nonce] = struct{}{}
	c.push(replayEntry{st.Timestamp, st.Nonce})
	return nil
}

// len returns how many nonces are remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.heap)
}

func (c *replayCache) push(e replayEntry) {
	h := append(c.heap, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].ts <= h[i].ts {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	c.heap = h
}

func (c *replayCache) pop() {
	h := c.heap
	delete(c.seen, h[0].nonce)
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && h[l].ts < h[m].ts {
			m = l
		}
		if r := l + 1; r < n && h[r].ts < h[m].ts {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	c.heap = h
	if n == 0 && cap(h) > 1024 {
		c.heap, c.seen = nil, nil // a burst's room goes once it is forgotten
	}
}
