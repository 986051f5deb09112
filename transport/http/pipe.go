package http

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// Pipe implements dcsync.Pipeliner: it returns a connection of its own to
// the peer on which batches are pipelined — each POST is written without
// waiting for the answers before it, and net/http's server, like any
// HTTP/1.1 server, handles a connection's requests one after the other and
// answers them in order. It returns nil when the Sender uses a Client given
// in SenderConfig, whose connections it does not control, or when the URL's
// host or a datacenter name is not printable ASCII: a pipe writes its
// requests itself and escapes nothing.
func (s *Sender) Pipe() dcsync.Pipe {
	if s.own == nil || s.head == nil {
		return nil
	}
	p := &pipe{s: s}
	s.mu.Lock()
	s.pipes = append(s.pipes, p)
	s.mu.Unlock()
	return p
}

// pipe is one pipelined connection, opened on first use and again after it
// breaks.
type pipe struct {
	s    *Sender
	mu   sync.Mutex // one Begin at a time: the order of the writes
	c    *pconn     // nil until the first Begin
	head []byte     // the request line and headers being written, reused
}

// pconn is an open connection and the batches waiting for their answers.
type pconn struct {
	nc    net.Conn
	calls chan *call    // written, in order, waiting for answers
	done  chan struct{} // closed when the connection broke
	once  sync.Once
	err   error // why it broke; set before done is closed
}

// call is a batch of n requests waiting for its answer.
type call struct {
	n   int
	res chan error // capacity 1
}

// maxPipelined bounds the batches written on a connection and not yet
// answered; the Syncer's window keeps far fewer.
const maxPipelined = 1024

// Begin implements dcsync.Pipe: it writes the batch's POST on the pipe's
// connection and returns a function that waits for its answer. A batch
// over the limits is sent in parts by the returned function instead, out
// of the pipe's order.
func (p *pipe) Begin(ctx context.Context, reqs []*dcsync.Request) (wait func() error) {
	s := p.s
	if s.closed.Load() {
		return func() error { return ErrClosed }
	}
	// Uncompressed, the limits are checked on the encoded batch: exact,
	// and cheaper than estimating first. A compressed batch's limit is on
	// its size decompressed, which only the estimate tells.
	gzipped := s.out.Encoding != wire.Encoding_ENCODING_IDENTITY
	if gzipped && !s.out.Fits(reqs) {
		return func() error { return s.Send(ctx, reqs) }
	}
	buf, st, err := s.seal(reqs)
	if err != nil {
		return func() error { return err }
	}
	if len(reqs) > s.out.MaxBatch || len(*buf) > s.out.MaxBody {
		wire.PutBuffer(buf)
		return func() error { return s.Send(ctx, reqs) }
	}
	cl := &call{n: len(reqs), res: make(chan error, 1)}
	p.mu.Lock()
	c, err := p.conn(ctx)
	if err == nil {
		p.head = s.appendHead(p.head[:0], len(*buf), &st)
		err = c.write(ctx, p.head, *buf, cl)
	}
	p.mu.Unlock()
	wire.PutBuffer(buf)
	if err != nil {
		return func() error { return err }
	}
	return func() error {
		select {
		case err := <-cl.res:
			return err
		case <-c.done:
			select {
			case err := <-cl.res: // answered before the break
				return err
			default:
				return fmt.Errorf("dcsync/transport/http: %w: %w", wire.ErrStreamBroken, c.err)
			}
		case <-ctx.Done():
			// The answers behind this one would wait as long: start over.
			c.fail(fmt.Errorf("dcsync/transport/http: no answer from %s: %w", s.url, context.Cause(ctx)))
			return fmt.Errorf("dcsync/transport/http: waiting for answer of %s: %w", s.url, context.Cause(ctx))
		}
	}
}

// conn returns the pipe's connection, dialing one when there is none or
// it broke; p.mu is held.
func (p *pipe) conn(ctx context.Context) (*pconn, error) {
	if p.c != nil {
		select {
		case <-p.c.done:
		default:
			return p.c, nil
		}
	}
	nc, err := p.s.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &pconn{nc: nc, calls: make(chan *call, maxPipelined), done: make(chan struct{})}
	go c.read(p.s)
	p.c = c
	return c, nil
}

func (p *pipe) close() {
	p.mu.Lock()
	c := p.c
	p.mu.Unlock()
	if c != nil {
		c.fail(ErrClosed)
	}
}

// dial opens a connection to the peer, with TLS for an https URL.
func (s *Sender) dial(ctx context.Context) (net.Conn, error) {
	u, err := url.Parse(s.url)
	if err != nil {
		return nil, fmt.Errorf("dcsync/transport/http: %w", err)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	nc, err := (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dcsync/transport/http: dial %s: %w", addr, err)
	}
	if u.Scheme != "https" {
		return nc, nil
	}
	tc := &tls.Config{}
	if s.tls != nil {
		tc = s.tls.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	tc.NextProtos = []string{"http/1.1"} // pipelining is HTTP/1.1's
	conn := tls.Client(nc, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dcsync/transport/http: TLS handshake with %s: %w", addr, err)
	}
	return conn, nil
}

// write writes a request, its head and body, and queues cl for its answer.
// Head and body go in one writev on a TCP connection: one system call, no
// copy of the body.
func (c *pconn) write(ctx context.Context, head, body []byte, cl *call) error {
	d, _ := ctx.Deadline() // zero: none
	c.nc.SetWriteDeadline(d)
	bufs := net.Buffers{head, body}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.fail(err)
		<-c.done
		return fmt.Errorf("dcsync/transport/http: %w: %w", wire.ErrStreamBroken, c.err)
	}
	select {
	case c.calls <- cl:
		return nil
	case <-c.done:
		return fmt.Errorf("dcsync/transport/http: %w: %w", wire.ErrStreamBroken, c.err)
	}
}

// fail breaks the connection: the batches waiting for answers fail with a
// retryable error.
func (c *pconn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.nc.Close()
	})
}

// read hands each answer to the batch it answers, in order, until the
// connection breaks, then fails the batches still waiting.
func (c *pconn) read(s *Sender) {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		// Wait for an answer's first byte even with no batch in flight:
		// a peer closing an idle connection breaks it now, not on the
		// next batch, which then goes on a new one.
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, net.ErrClosed) {
				<-c.done
				err = c.err
			}
			c.fail(err)
		}
		var cl *call
		select {
		case cl = <-c.calls:
		case <-c.done:
			for {
				select {
				case cl = <-c.calls:
					cl.res <- fmt.Errorf("dcsync/transport/http: %w: %w", wire.ErrStreamBroken, c.err)
				default:
					return
				}
			}
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				<-c.done // closed by fail: say why
				err = c.err
			}
			c.fail(err)
			cl.res <- fmt.Errorf("dcsync/transport/http: %w: %w", wire.ErrStreamBroken, err)
			continue
		}
		cl.res <- s.answer(resp, cl.n)
		if resp.Close {
			c.fail(errors.New("the peer closed the connection"))
		}
	}
}
