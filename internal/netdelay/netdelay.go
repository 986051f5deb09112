// Package netdelay is a TCP proxy on loopback that makes a link look like a
// long one: every byte is held for a fixed delay in each direction (a delay
// line), optionally with a bandwidth cap. The tests and the benchmark
// command put it between two datacenters to measure dcsync across a WAN.
//
// It is a few goroutines per connection: one reads each direction into
// timestamped chunks, one writes them out once their time has come. Reads
// are not paced, so a window of data of any size is in the line at once,
// as on a real link; the line holds at most MaxLine bytes per direction,
// beyond which the reader waits (the link's buffer is full).
package netdelay

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets up a Proxy.
type Config struct {
	// Target is the address connections are forwarded to.
	Target string
	// Delay is the one-way delay added in each direction.
	Delay time.Duration
	// Bandwidth caps each direction of each connection, in bytes per
	// second; 0 for none.
	Bandwidth int
	// MaxLine bounds the bytes in the delay line of one direction of one
	// connection; default 64 MiB.
	MaxLine int
}

// Proxy forwards the connections it accepts to Config.Target through
// delay lines. Close stops it and closes every connection.
type Proxy struct {
	cfg  Config
	ln   net.Listener
	wg   sync.WaitGroup
	peak atomic.Int64 // most bytes in one line at once

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start listens on a free loopback port and forwards to cfg.Target.
func Start(cfg Config) (*Proxy, error) {
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 << 20
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the address to connect to instead of Target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Peak returns the most bytes one direction of one connection held in its
// delay line at once: about the bytes in flight one way on the link.
func (p *Proxy) Peak() int { return int(p.peak.Load()) }

// Close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track adds c to the connections Close closes; false when closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Go(func() {
			defer p.untrack(in)
			out, err := net.DialTimeout("tcp", p.cfg.Target, 5*time.Second)
			if err != nil {
				return
			}
			if !p.track(out) {
				return
			}
			defer p.untrack(out)
			var wg sync.WaitGroup
			wg.Go(func() { p.line(in, out) })
			wg.Go(func() { p.line(out, in) })
			wg.Wait()
		})
	}
}

// chunk is bytes read at some time, due at the other end Delay later.
type chunk struct {
	buf *[]byte // from bufs, back once written
	due time.Time
}

// bufs hold the chunks' bytes, by size class: 512 bytes << i. The line
// reuses them, so that what it carries costs the process's garbage
// collector (which the measured program shares) next to nothing, as a
// network would.
var bufs [8]sync.Pool

// getBuf returns a buffer holding a copy of b.
func getBuf(b []byte) *[]byte {
	i := 0
	for i < len(bufs)-1 && 512<<i < len(b) {
		i++
	}
	p, _ := bufs[i].Get().(*[]byte)
	if p == nil || cap(*p) < len(b) {
		buf := make([]byte, 0, max(512<<i, len(b)))
		p = &buf
	}
	*p = append((*p)[:0], b...)
	return p
}

// putBuf returns p to its size class, unless it is of none.
func putBuf(p *[]byte) {
	for i := range bufs {
		if cap(*p) == 512<<i {
			bufs[i].Put(p)
			return
		}
	}
}

// line carries src to dst through the delay line until src ends; then it
// closes dst's writing side, or both on an error.
func (p *Proxy) line(src, dst net.Conn) {
	ch := make(chan chunk, 4096)
	var held atomic.Int64
	room := make(chan struct{}, 1) // signalled when the writer took bytes out
	done := make(chan struct{})
	go func() { // writer
		defer close(done)
		var next time.Time // bandwidth: the earliest the next byte may go
		for c := range ch {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			b := *c.buf
			if p.cfg.Bandwidth > 0 {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = time.Now().Add(time.Duration(len(b)) * time.Second / time.Duration(p.cfg.Bandwidth))
			}
			_, err := dst.Write(b)
			held.Add(-int64(len(b)))
			putBuf(c.buf)
			select {
			case room <- struct{}{}:
			default:
			}
			if err != nil {
				src.Close()
				dst.Close()
				for range ch { // let the reader end
				}
				return
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c := chunk{buf: getBuf(buf[:n]), due: time.Now().Add(p.cfg.Delay)}
			h := held.Add(int64(n))
			for cur := p.peak.Load(); h > cur && !p.peak.CompareAndSwap(cur, h); cur = p.peak.Load() {
			}
			for held.Load() > int64(p.cfg.MaxLine) {
				select {
				case <-room:
				case <-done:
				}
				if isDone(done) {
					break
				}
			}
			ch <- c
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			break
		}
	}
	close(ch)
	<-done
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
