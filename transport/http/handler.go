package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
)

// HandlerConfig configures NewHandler. Secrets is required; the zero value
// of every other field selects its default.
type HandlerConfig struct {
	// Secrets holds the secret shared with each peer, by datacenter name;
	// each at least 16 bytes. Batches from other names are refused.
	Secrets map[string][]byte
	// NextSecrets holds a second secret accepted from a peer while its
	// secret rotates (see SECURITY.md); a peer named here must be in
	// Secrets too.
	NextSecrets map[string][]byte
	// DC names this datacenter; batches signed for another are refused.
	// Default: the Collector's own, when it is a dcsync.Syncer's.
	DC string
	// RequireTo refuses batches whose stamp names no receiver (a Sender
	// without To): a batch is then accepted only by the datacenter it was
	// signed for, even where a secret is shared by more than two
	// datacenters. Stamps naming another datacenter are always refused.
	// Default false, so that senders without To keep working.
	RequireTo bool
	// MaxBody bounds a batch's body in bytes, as received and after
	// decompression; default 4 MiB. Senders split larger batches when
	// their SenderConfig.MaxBody says the same.
	MaxBody int
	// MaxBatch bounds the requests of a batch; default
	// dcsync.DefaultMaxBatch.
	MaxBatch int
	// MaxSkew is how far a batch's timestamp may be from this clock;
	// default 5 minutes.
	MaxSkew time.Duration
	// ReplayCache is how many batch nonces are remembered for each peer to
	// refuse replays; default 1<<18.
	ReplayCache int
	// Nonces, when set, remembers nonces across the replicas of this
	// receiver, so that a batch captured on its way to one is refused by
	// the others; transport/redis's NonceStore is one. Without it replay
	// protection is per process.
	Nonces NonceStore
	// BodyTimeout bounds the time to read a batch's body; default 30
	// seconds, three times a Sender's default Delivery.Timeout.
	BodyTimeout time.Duration
	// MaxPending bounds the bytes of bodies being read and not yet
	// authenticated, all requests together; default 16 MiB or 4 MaxBody,
	// whichever is more, and more than MaxBody. Past it,
	// requests are answered 503 (retried): unauthenticated callers cannot
	// make the handler hold more.
	MaxPending int
	// Logger receives a warning for batches refused as a whole (bad
	// signature, unknown datacenter, malformed...), at most one a second
	// with the count of the others; nil selects slog.Default().
	Logger *slog.Logger
}

// NonceStore remembers the nonces of accepted batches across processes;
// see HandlerConfig.Nonces. transport/redis's NonceStore implements it.
type NonceStore = auth.NonceStore

// DefaultBodyTimeout is HandlerConfig.BodyTimeout's default.
const DefaultBodyTimeout = 30 * time.Second

// Validate reports whether NewHandler accepts cfg.
func (cfg HandlerConfig) Validate() error {
	_, err := cfg.endpoint(nopCollector{})
	return err
}

type nopCollector struct{}

func (nopCollector) Collect(context.Context, string, []*dcsync.Request) error { return nil }

func (cfg HandlerConfig) endpoint(c dcsync.Collector) (*wire.Endpoint, error) {
	return wire.NewEndpoint(c, wire.EndpointConfig{Secrets: cfg.Secrets, NextSecrets: cfg.NextSecrets, DC: cfg.DC, RequireTo: cfg.RequireTo,
		MaxBody: cfg.MaxBody, MaxBatch: cfg.MaxBatch, MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache,
		Nonces: cfg.Nonces, Log: cfg.Logger})
}

// NewHandler returns an http.Handler that authenticates the batches POSTed
// to it and hands them to c. GET and HEAD answer 200 "ok", for health
// checks. It panics when cfg is invalid; see HandlerConfig.Validate.
// Serve it with NewServer, whose timeouts bound slow clients.
func NewHandler(c dcsync.Collector, cfg HandlerConfig) http.Handler {
	ep, err := cfg.endpoint(c)
	if err != nil {
		panic("dcsync/transport/http: NewHandler: " + err.Error())
	}
	h := &handler{ep: ep, bodyTimeout: cfg.BodyTimeout, maxPending: int64(cfg.MaxPending)}
	if h.bodyTimeout <= 0 {
		h.bodyTimeout = DefaultBodyTimeout
	}
	if h.maxPending <= 0 {
		h.maxPending = max(16<<20, 4*int64(ep.MaxBody))
	}
	h.maxPending = max(h.maxPending, int64(ep.MaxBody)+1) // one body always fits
	return h
}

type handler struct {
	ep          *wire.Endpoint
	bodyTimeout time.Duration
	maxPending  int64
	pending     atomic.Int64 // bytes of unauthenticated bodies held
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
		return
	default:
		w.Header().Set("Allow", "POST, GET, HEAD")
		http.Error(w, "dcsync: POST a batch", http.StatusMethodNotAllowed)
		return
	}
	from := r.Header.Get(HeaderFrom) // claimed, for the log until verified
	f, ok := formatOf(r.Header.Get("Content-Type"))
	if !ok {
		reply(w, wire.Proto, http.StatusUnsupportedMediaType, h.ep.Refused(r.RemoteAddr, from, h.ep.Reject(fmt.Errorf(
			"%w: Content-Type %.64q, want %s or %s", dcsync.ErrInvalid, r.Header.Get("Content-Type"), ContentTypeProto, ContentTypeJSON))))
		return
	}
	enc := wire.Encoding_ENCODING_IDENTITY
	switch ce := r.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		enc = wire.Encoding_ENCODING_GZIP
	default:
		reply(w, f, http.StatusUnsupportedMediaType, h.ep.Refused(r.RemoteAddr, from, h.ep.Reject(fmt.Errorf(
			"%w: Content-Encoding %.64q, want gzip or none", dcsync.ErrInvalid, ce))))
		return
	}
	// Refuse what can be refused before reading the body: a stamp that can
	// never verify costs nothing more than its header.
	st, err := stampOf(r.Header)
	if err == nil {
		st.Encoding = wire.EncodingName(enc)
		err = h.ep.Verifier.Check(&st)
	}
	if err == nil && r.ContentLength > int64(h.ep.MaxBody) {
		err = fmt.Errorf("%w: body of %d bytes, limit %d", dcsync.ErrBatchTooLarge, r.ContentLength, h.ep.MaxBody)
	}
	if err != nil {
		res := h.ep.Refused(r.RemoteAddr, from, h.ep.Reject(err))
		reply(w, f, statusOf(res.Code), res)
		return
	}
	// The body's read is bounded in time whatever the server's timeouts.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTimeout))
	buf := wire.GetBuffer() // the decoder copies what it keeps
	held := int64(0)
	body, err := h.readBody(w, r, (*buf)[:0], &held)
	*buf = body
	defer wire.PutBuffer(buf)
	if err != nil {
		h.pending.Add(-held)
		res := wire.ResultsOf(err)
		if !errors.Is(err, errPending) {
			res = h.ep.Reject(err)
		}
		reply(w, f, statusOf(res.Code), h.ep.Refused(r.RemoteAddr, from, res))
		return
	}
	reqs, res := h.ep.Open(r.Context(), &st, enc, f, body)
	h.pending.Add(-held) // authenticated, or refused: no longer pending either way
	if res == nil {
		res = h.ep.Collect(r.Context(), st.From, reqs)
	}
	res = h.ep.Refused(r.RemoteAddr, from, res)
	reply(w, f, statusOf(res.Code), res)
}

// errPending refuses a body while too many unauthenticated bytes are held.
var errPending = errors.New("dcsync: too many batches being received, retry")

// readBody appends the body of r to dst, refusing more than MaxBody bytes.
// It never allocates from the declared Content-Length: room grows with the
// bytes that arrived, at most doubling, and the bytes received count in
// h.pending (and *held), 32 KiB ahead, until the caller releases them.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, dst []byte, held *int64) ([]byte, error) {
	const chunk = 32 << 10
	limit := h.ep.MaxBody
	rd := http.MaxBytesReader(w, r.Body, int64(limit))
	for {
		if n := int64(min(len(dst)+chunk, limit+1)) - *held; n > 0 {
			if h.pending.Add(n) > h.maxPending {
				h.pending.Add(-n)
				return dst, errPending
			}
			*held += n
		}
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, max(cap(dst), chunk))
		}
		n, err := rd.Read(dst[len(dst):min(cap(dst), len(dst)+chunk)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return dst, fmt.Errorf("%w: body over %d bytes", dcsync.ErrBatchTooLarge, limit)
		}
		if err != nil {
			return dst, fmt.Errorf("%w: reading body: %v", dcsync.ErrInvalid, err)
		}
	}
}

// Timeouts of NewServer's http.Server: a header within ReadHeaderTimeout, a
// whole request (a 4 MiB body on a link of a few Mbit/s) within
// ReadTimeout, its answer — after collecting the batch — within
// WriteTimeout, and idle connections closed after IdleTimeout.
const (
	ServerReadHeaderTimeout = 10 * time.Second
	ServerReadTimeout       = 40 * time.Second
	ServerWriteTimeout      = 90 * time.Second
	ServerIdleTimeout       = 2 * time.Minute
	ServerMaxHeaderBytes    = 64 << 10
)

// NewServer returns an http.Server serving h on addr with timeouts that
// bound slow and idle clients yet fit the largest batch (see the Server*
// constants), and headers bounded to 64 KiB. Serve it as usual:
//
//	srv := dchttp.NewServer(":8080", mux)
//	go srv.ListenAndServe() // or ListenAndServeTLS, or Serve(ln)
//	defer srv.Shutdown(ctx)
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h,
		ReadHeaderTimeout: ServerReadHeaderTimeout, ReadTimeout: ServerReadTimeout,
		WriteTimeout: ServerWriteTimeout, IdleTimeout: ServerIdleTimeout, MaxHeaderBytes: ServerMaxHeaderBytes}
}

// reply writes res with status in format f.
func reply(w http.ResponseWriter, f wire.Format, status int, res *wire.Results) {
	out, err := wire.MarshalResults(nil, res, f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType(f))
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
