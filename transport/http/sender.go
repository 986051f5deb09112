package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
)

// SenderConfig configures NewSender. URL, From and Secret are required; the
// zero value of every other field selects its default.
type SenderConfig struct {
	// URL is the peer's collector endpoint, where its Handler is mounted,
	// for example "https://telecom.example:8443/dcsync".
	URL string
	// From names this datacenter, as the peer's HandlerConfig.Secrets does.
	From string
	// To names the peer's datacenter, as its HandlerConfig.DC (or its
	// Syncer's DC) does. The stamp binds it, so a batch signed for one
	// datacenter is refused by every other, even one that shares the
	// secret. Optional: empty signs no receiver, which a peer accepts
	// unless it sets RequireTo. Set it; see SECURITY.md.
	To string
	// Secret is shared with the peer; at least 16 bytes.
	Secret []byte
	// Client sends the requests; nil selects a client tuned for a few busy
	// connections to one host, using TLS when set.
	Client *http.Client
	// TLS configures the default client's TLS (and mutual TLS, with
	// Certificates); nil uses the system roots. Ignored when Client is set.
	TLS *tls.Config
	// Compress gzips batches: fewer bytes on a long link for some CPU.
	Compress bool
	// MaxBody and MaxBatch split batches that the peer would refuse; they
	// should equal the peer's HandlerConfig values. Defaults as there.
	MaxBody  int
	MaxBatch int
}

// Sender posts batches to one peer. It implements dcsync.Sender and is
// safe for concurrent use; concurrent Sends use separate connections. It
// also implements dcsync.Pipeliner: each Pipe is a connection of its own on
// which batches are pipelined (HTTP/1.1 pipelining), answered in order.
type Sender struct {
	url    string
	client *http.Client
	own    *http.Transport // the default client's, closed by Close
	out    *wire.Outbound
	tls    *tls.Config // of the pipes' connections
	head   []byte      // the pipes' request line and fixed headers
	closed atomic.Bool

	mu    sync.Mutex
	pipes []*pipe // to close
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("dcsync/transport/http: sender closed")

// NewSender returns a Sender for cfg.
func NewSender(cfg SenderConfig) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dcsync/transport/http: invalid URL %q", cfg.URL)
	}
	out, err := wire.NewOutbound(cfg.From, cfg.To, cfg.Secret, cfg.Compress, cfg.MaxBody, cfg.MaxBatch)
	if err != nil {
		return nil, fmt.Errorf("dcsync/transport/http: %w", err)
	}
	s := &Sender{url: cfg.URL, client: cfg.Client, out: out, tls: cfg.TLS, head: pipeHead(u, cfg.From, cfg.To, out.Encoding)}
	if s.client == nil {
		s.own = defaultTransport(cfg.TLS)
		s.client = &http.Client{Transport: s.own}
	}
	return s, nil
}

// defaultTransport keeps enough idle connections for a busy peer and
// leaves compression to the Sender, which signs the compressed bytes.
func defaultTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   5 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// Send implements dcsync.Sender: it posts reqs, split to the limits, and
// returns nil, a *dcsync.BatchError naming the requests that failed, or an
// error for the whole batch. Failures the peer says are final match
// dcsync.ErrInvalid or dcsync.ErrUnauthenticated; network errors, 503s and
// the like do not, so they are retried.
func (s *Sender) Send(ctx context.Context, reqs []*dcsync.Request) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.out.Send(ctx, reqs, s.post)
}

// seal encodes and signs one batch into a pooled buffer, which the caller
// returns to the pool.
func (s *Sender) seal(reqs []*dcsync.Request) (*[]byte, auth.Stamp, error) {
	buf := wire.GetBuffer()
	body, st, err := s.out.Seal((*buf)[:0], reqs)
	if err != nil {
		wire.PutBuffer(buf)
		return nil, st, err
	}
	*buf = body
	return buf, st, nil
}

// request returns the signed POST of one batch that fits the limits; its
// body is pooled, returned to the pool when closed.
func (s *Sender) request(ctx context.Context, reqs []*dcsync.Request) (*http.Request, error) {
	buf, st, err := s.seal(reqs)
	if err != nil {
		return nil, err
	}
	body := *buf
	rb := &pooledBody{buf: buf}
	rb.r.Reset(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, rb)
	if err != nil {
		rb.Close()
		return nil, fmt.Errorf("dcsync/transport/http: %w", err)
	}
	req.ContentLength = int64(len(body))
	req.Header["Content-Type"] = []string{ContentTypeProto}
	if s.out.Encoding == wire.Encoding_ENCODING_GZIP {
		req.Header["Content-Encoding"] = []string{"gzip"}
	}
	setStamp(req.Header, &st)
	return req, nil
}

// post sends one batch that fits the limits.
func (s *Sender) post(ctx context.Context, reqs []*dcsync.Request) error {
	req, err := s.request(ctx, reqs)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("dcsync/transport/http: post to %s: %w", s.url, err)
	}
	return s.answer(resp, len(reqs))
}

// answer reads and closes the answer to a batch of n requests and returns
// the batch's error.
func (s *Sender) answer(resp *http.Response, n int) error {
	defer resp.Body.Close()
	// Results carry at most a short message per request.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, int64(n)*4096+65536))
	if err != nil {
		return fmt.Errorf("dcsync/transport/http: reading answer of %s: %w", s.url, err)
	}
	if f, ok := formatOf(resp.Header.Get("Content-Type")); ok {
		var res wire.Results
		if wire.UnmarshalResults(raw, f, &res) == nil && (resp.StatusCode == http.StatusOK) == (res.Code == wire.Code_CODE_OK) {
			return wrap(wire.ErrorOf(&res, n), s.url)
		}
	}
	return errorOfStatus(resp.StatusCode, strconv.Quote(string(raw[:min(len(raw), 200)])))
}

// pooledBody is a request body in a pooled buffer, returned to the pool
// when the transport closes the body — which it may do after Do returns,
// so reads after that find the body closed instead of a reused buffer.
type pooledBody struct {
	mu  sync.Mutex
	buf *[]byte // nil once closed
	r   bytes.Reader
}

func (b *pooledBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return 0, errBodyClosed
	}
	return b.r.Read(p)
}

func (b *pooledBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf != nil {
		b.r.Reset(nil)
		wire.PutBuffer(b.buf)
		b.buf = nil
	}
	return nil
}

var errBodyClosed = errors.New("dcsync/transport/http: request body read after close")

// wrap names the peer in a whole-batch error; per-request errors stay as
// they are so that BatchError keeps its shape.
func wrap(err error, url string) error {
	var be *dcsync.BatchError
	if err == nil || errors.As(err, &be) {
		return err
	}
	return fmt.Errorf("dcsync/transport/http: %s: %w", url, err)
}

// Close makes later Sends fail and closes the idle connections of the
// default client. A Client given in SenderConfig is left alone.
func (s *Sender) Close() error {
	s.closed.Store(true)
	s.mu.Lock()
	pipes := s.pipes
	s.pipes = nil
	s.mu.Unlock()
	for _, p := range pipes {
		p.close()
	}
	if s.own != nil {
		s.own.CloseIdleConnections()
	}
	return nil
}
