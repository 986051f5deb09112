package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// HandlerConfig configures NewHandler. Secrets is required; the zero value
// of every other field selects its default.
type HandlerConfig struct {
	// Secrets holds the secret shared with each peer, by datacenter name;
	// each at least 16 bytes. Batches from other names are refused.
	Secrets map[string][]byte
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
	// ReplayCache is how many batch nonces are remembered to refuse
	// replays; default 1<<18.
	ReplayCache int
	// Logger receives a warning for each batch refused as a whole (bad
	// signature, unknown datacenter, malformed...); nil logs nothing.
	Logger *slog.Logger
}

// Validate reports whether NewHandler accepts cfg.
func (cfg HandlerConfig) Validate() error {
	_, err := cfg.endpoint(nopCollector{})
	return err
}

type nopCollector struct{}

func (nopCollector) Collect(context.Context, string, []*dcsync.Request) error { return nil }

func (cfg HandlerConfig) endpoint(c dcsync.Collector) (*wire.Endpoint, error) {
	return wire.NewEndpoint(c, wire.EndpointConfig{Secrets: cfg.Secrets, MaxBody: cfg.MaxBody, MaxBatch: cfg.MaxBatch,
		MaxSkew: cfg.MaxSkew, ReplayCache: cfg.ReplayCache, Log: cfg.Logger})
}

// NewHandler returns an http.Handler that authenticates the batches POSTed
// to it and hands them to c. GET and HEAD answer 200 "ok", for health
// checks. It panics when cfg is invalid; see HandlerConfig.Validate.
func NewHandler(c dcsync.Collector, cfg HandlerConfig) http.Handler {
	ep, err := cfg.endpoint(c)
	if err != nil {
		panic("dcsync/transport/http: NewHandler: " + err.Error())
	}
	return &handler{ep: ep}
}

type handler struct {
	ep *wire.Endpoint
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
		reply(w, wire.Proto, http.StatusUnsupportedMediaType, h.ep.Refused(r.RemoteAddr, from, &wire.Results{Code: wire.Code_CODE_INVALID,
			Message: fmt.Sprintf("dcsync: Content-Type %q, want %s or %s", r.Header.Get("Content-Type"), ContentTypeProto, ContentTypeJSON)}))
		return
	}
	enc := wire.Encoding_ENCODING_IDENTITY
	switch ce := r.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		enc = wire.Encoding_ENCODING_GZIP
	default:
		reply(w, f, http.StatusUnsupportedMediaType, h.ep.Refused(r.RemoteAddr, from, &wire.Results{Code: wire.Code_CODE_INVALID,
			Message: fmt.Sprintf("dcsync: Content-Encoding %q, want gzip or none", ce)}))
		return
	}
	// Refuse what can be refused before reading the body.
	st, err := stampOf(r.Header)
	if err == nil && !h.ep.Verifier.Known(st.From) {
		err = fmt.Errorf("%w: no secret for datacenter %q", dcsync.ErrUnknownPeer, st.From)
	}
	if err == nil && r.ContentLength > int64(h.ep.MaxBody) {
		err = fmt.Errorf("%w: body of %d bytes, limit %d", dcsync.ErrBatchTooLarge, r.ContentLength, h.ep.MaxBody)
	}
	if err != nil {
		res := h.ep.Refused(r.RemoteAddr, from, wire.ResultsOf(err))
		reply(w, f, statusOf(res.Code), res)
		return
	}
	buf := wire.GetBuffer() // the decoder copies what it keeps
	body, err := readBody(w, r, (*buf)[:0], h.ep.MaxBody)
	*buf = body
	defer wire.PutBuffer(buf)
	if err != nil {
		res := h.ep.Refused(r.RemoteAddr, from, wire.ResultsOf(err))
		reply(w, f, statusOf(res.Code), res)
		return
	}
	res := h.ep.Refused(r.RemoteAddr, from, h.ep.Serve(r.Context(), &st, enc, f, body))
	reply(w, f, statusOf(res.Code), res)
}

// readBody appends the body of r to dst, refusing more than limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, dst []byte, limit int) ([]byte, error) {
	if n := int(r.ContentLength); n > 0 && cap(dst) <= n {
		dst = make([]byte, 0, n+512) // room to read EOF without growing
	}
	rd := http.MaxBytesReader(w, r.Body, int64(limit))
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := rd.Read(dst[len(dst):cap(dst)])
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
