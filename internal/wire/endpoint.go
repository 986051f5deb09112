package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	Log       *slog.Logger // receives refused batches; nil for none
}

// Refused logs a batch refused as a whole, from the peer at remote that
// claimed to be from, and returns res. Operators see probes and
// misconfigured peers here; the refused peer sees only the answer.
func (e *Endpoint) Refused(remote, from string, res *Results) *Results {
	if e.Log != nil && res.Code != Code_CODE_OK {
		e.Log.Warn("dcsync: batch refused", "remote", remote, "from", from, "code", res.Code.String(), "reason", res.Message)
	}
	return res
}

// Serve authenticates body with st, decodes it and collects its requests.
// It never returns nil; a Results with a failure code means nothing of the
// batch was applied.
func (e *Endpoint) Serve(ctx context.Context, st *auth.Stamp, enc Encoding, f Format, body []byte) *Results {
	reqs, res := e.Open(st, enc, f, body)
	if res != nil {
		return res
	}
	return e.Collect(ctx, st.From, reqs)
}

// Open authenticates body with st and decodes it: the first half of Serve,
// which a transport may run apart from the second to overlap batches. It
// returns the requests, or the Results refusing the batch.
func (e *Endpoint) Open(st *auth.Stamp, enc Encoding, f Format, body []byte) ([]*dcsync.Request, *Results) {
	if len(body) > e.MaxBody {
		return nil, ResultsOf(fmt.Errorf("%w: body of %d bytes, limit %d", dcsync.ErrBatchTooLarge, len(body), e.MaxBody))
	}
	if err := e.Verifier.Verify(st, body); err != nil {
		return nil, ResultsOf(err)
	}
	reqs, err := Decode(body, f, enc, e.MaxBody, e.MaxBatch)
	if err != nil {
		return nil, ResultsOf(err)
	}
	return reqs, nil
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
	MaxBody     int
	MaxBatch    int
	MaxSkew     time.Duration
	ReplayCache int
	Log         *slog.Logger
}

// NewEndpoint checks cfg and returns the Endpoint serving c.
func NewEndpoint(c dcsync.Collector, cfg EndpointConfig) (*Endpoint, error) {
	if c == nil {
		return nil, errors.New("wire: nil Collector")
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Secrets: cfg.Secrets, MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache})
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
	return e, nil
}
