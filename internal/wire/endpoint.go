package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
)

// Defaults shared by both transports.
const (
	// DefaultMaxBody bounds a batch's body, on the wire and decompressed:
	// gRPC's default message limit, and room for 256 writes of 16 KiB.
	DefaultMaxBody = 4 << 20
	// DefaultMaxBatch bounds the requests of a batch.
	DefaultMaxBatch = dcsync.DefaultMaxBatch
)

// Endpoint is the receiving side both transports share: it authenticates,
// bounds and decodes one batch, then hands it to the Collector. The
// transport reads the bytes, under MaxBody, and writes the Results back.
type Endpoint struct {
	Collector dcsync.Collector
	Verifier  *auth.Verifier
	MaxBody   int          // bytes of a body, on the wire and decompressed
	MaxBatch  int          // requests in a batch
	Log       *slog.Logger // receives refused batches, rate-limited; never nil
	limits    [16]logLimit // by code
	now       func() time.Time
}

// logLimit rate-limits the log lines of one code.
type logLimit struct {
	logged  atomic.Int64 // Unix nanoseconds of the last line
	dropped atomic.Int64 // refusals not logged since
}

// refusalCounter is what a Collector made by dcsync.Syncer offers to count
// the batches its transports refused.
type refusalCounter interface{ Refused(err error) }

// Reject counts a batch the transport refuses as a whole before the
// Collector sees it, and returns the Results refusing it. Refused still
// logs it.
func (e *Endpoint) Reject(err error) *Results {
	if c, ok := e.Collector.(refusalCounter); ok {
		c.Refused(err)
	}
	return ResultsOf(err)
}

// logEvery is the least time between two refusals logged.
const logEvery = time.Second

// Refused logs a batch refused as a whole, from the peer at remote that
// claimed to be from, and returns res. Operators see probes and
// misconfigured peers here, at most one line a second for each code, with
// the count of those not logged; the refused peer sees only the answer.
func (e *Endpoint) Refused(remote, from string, res *Results) *Results {
	if res.Code == Code_CODE_OK {
		return res
	}
	l := &e.limits[int(res.Code)&(len(e.limits)-1)]
	now := e.now().UnixNano()
	last := l.logged.Load()
	if last != 0 && now-last < int64(logEvery) || !l.logged.CompareAndSwap(last, now) {
		l.dropped.Add(1)
		return res
	}
	if len(from) > auth.MaxName {
		from = from[:auth.MaxName] + "..."
	}
	e.Log.Warn("dcsync: batch refused", "remote", remote, "from", from, "code", res.Code.String(), "reason", res.Message,
		"not_logged_since_last", l.dropped.Swap(0))
	return res
}

// Serve authenticates body with st, decodes it and collects its requests.
// It never returns nil; a Results with a failure code means nothing of the
// batch was applied.
func (e *Endpoint) Serve(ctx context.Context, st *auth.Stamp, enc Encoding, f Format, body []byte) *Results {
	reqs, res := e.Open(ctx, st, enc, f, body)
	if res != nil {
		return res
	}
	return e.Collect(ctx, st.From, reqs)
}

// Open authenticates body with st and decodes it: the first half of Serve,
// which a transport may run apart from the second to overlap batches. It
// returns the requests, or the Results refusing the batch.
func (e *Endpoint) Open(ctx context.Context, st *auth.Stamp, enc Encoding, f Format, body []byte) ([]*dcsync.Request, *Results) {
	if len(body) > e.MaxBody {
		return nil, e.Reject(fmt.Errorf("%w: body of %d bytes, limit %d", dcsync.ErrBatchTooLarge, len(body), e.MaxBody))
	}
	if enc != Encoding_ENCODING_IDENTITY && enc != Encoding_ENCODING_GZIP {
		return nil, e.Reject(fmt.Errorf("%w: unknown encoding %d", dcsync.ErrInvalid, enc))
	}
	st.Encoding = EncodingName(enc)
	if err := e.Verifier.Verify(ctx, st, body); err != nil {
		if errors.Is(err, auth.ErrBusy) {
			return nil, ResultsOf(err) // retryable, not a refusal
		}
		return nil, e.Reject(err)
	}
	reqs, err := Decode(body, f, enc, e.MaxBody, e.MaxBatch)
	if err != nil {
		return nil, e.Reject(err)
	}
	return reqs, nil
}

// EncodingName is the name of enc in a stamp and in HTTP's
// Content-Encoding: "" or "gzip"; unknown encodings are named by number,
// which no stamp verifies.
func EncodingName(enc Encoding) string {
	switch enc {
	case Encoding_ENCODING_IDENTITY:
		return ""
	case Encoding_ENCODING_GZIP:
		return "gzip"
	}
	return fmt.Sprintf("encoding-%d", int32(enc))
}

// Collect hands an opened batch from peer from to the Collector: the
// second half of Serve.
func (e *Endpoint) Collect(ctx context.Context, from string, reqs []*dcsync.Request) *Results {
	res := ResultsOf(e.Collector.Collect(ctx, from, reqs))
	if res.Code == Code_CODE_RETRY && ctx.Err() != nil {
		res.Message = fmt.Sprintf("%s (%v)", res.Message, context.Cause(ctx))
	}
	return res
}

// EndpointConfig is what both transports' server configurations hold.
// Secrets is required; zero values select the defaults.
type EndpointConfig struct {
	Secrets     map[string][]byte
	NextSecrets map[string][]byte
	DC          string // this datacenter; default the Collector's, when it has a DC method
	RequireTo   bool   // refuse stamps that name no receiver
	MaxBody     int
	MaxBatch    int
	MaxSkew     time.Duration
	ReplayCache int
	Nonces      auth.NonceStore
	Log         *slog.Logger // default slog.Default()
}

// NewEndpoint checks cfg and returns the Endpoint serving c.
func NewEndpoint(c dcsync.Collector, cfg EndpointConfig) (*Endpoint, error) {
	if c == nil {
		return nil, errors.New("wire: nil Collector")
	}
	dc := cfg.DC
	if n, ok := c.(interface{ DC() string }); ok && dc == "" {
		dc = n.DC()
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Secrets: cfg.Secrets, NextSecrets: cfg.NextSecrets, DC: dc,
		RequireTo: cfg.RequireTo, MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache, Nonces: cfg.Nonces})
	if err != nil {
		return nil, err
	}
	e := &Endpoint{Collector: c, Verifier: v, MaxBody: cfg.MaxBody, MaxBatch: cfg.MaxBatch, Log: cfg.Log}
	if e.MaxBody <= 0 {
		e.MaxBody = DefaultMaxBody
	}
	if e.MaxBatch <= 0 {
		e.MaxBatch = DefaultMaxBatch
	}
	if e.Log == nil {
		e.Log = slog.Default()
	}
	e.now = time.Now
	return e, nil
}
