package wire

import (
	"context"
	"errors"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
)

// Outbound is the sending side both transports share: it splits a batch to
// fit the receiver's limits, encodes and signs each part, and merges the
// parts' results.
type Outbound struct {
	Signer   *auth.Signer
	Encoding Encoding
	MaxBody  int // split batches whose body would exceed this
	MaxBatch int // split batches with more requests than this
}

// NewOutbound checks and completes the settings both transports' senders
// share; zero maxBody and maxBatch select the defaults.
func NewOutbound(from string, secret []byte, compress bool, maxBody, maxBatch int) (*Outbound, error) {
	s, err := auth.NewSigner(from, secret)
	if err != nil {
		return nil, err
	}
	o := &Outbound{Signer: s, MaxBody: maxBody, MaxBatch: maxBatch}
	if compress {
		o.Encoding = Encoding_ENCODING_GZIP
	}
	s.Encoding = EncodingName(o.Encoding) // the signature binds it
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	return o, nil
}

// Seal appends the encoded batch to dst and signs it.
func (o *Outbound) Seal(dst []byte, reqs []*dcsync.Request) ([]byte, auth.Stamp, error) {
	body, err := Encode(dst, reqs, Proto, o.Encoding)
	if err != nil {
		return nil, auth.Stamp{}, err
	}
	return body, o.Signer.Sign(body), nil
}

// Send delivers reqs through send, split into parts within the limits,
// one after another, and returns what a dcsync.Sender returns for the
// whole: nil, a *dcsync.BatchError, or the whole-batch error of a batch
// that needed no split.
func (o *Outbound) Send(ctx context.Context, reqs []*dcsync.Request, send func(context.Context, []*dcsync.Request) error) error {
	if len(reqs) == 0 {
		return nil
	}
	end := o.split(reqs)
	if end == len(reqs) {
		return send(ctx, reqs)
	}
	errs := make([]error, len(reqs))
	failed := false
	for start := 0; start < len(reqs); {
		part := reqs[start : start+end]
		err := send(ctx, part)
		var be *dcsync.BatchError
		isBatch := errors.As(err, &be) && len(be.Errs) == len(part)
		for i := range part {
			e := err
			if isBatch {
				e = be.Errs[i]
			}
			if e != nil {
				errs[start+i], failed = e, true
			}
		}
		start += end
		end = o.split(reqs[start:])
	}
	if !failed {
		return nil
	}
	return &dcsync.BatchError{Errs: errs}
}

// Fits reports whether reqs go in one body, with no split.
func (o *Outbound) Fits(reqs []*dcsync.Request) bool { return o.split(reqs) == len(reqs) }

// split returns how many requests from the front of reqs fit one body: at
// least one, at most MaxBatch, and no more than MaxBody bytes by an
// estimate that errs on the large side.
func (o *Outbound) split(reqs []*dcsync.Request) int {
	size := 0
	for i, r := range reqs {
		if i == o.MaxBatch {
			return i
		}
		size += EstimateSize(r)
		if size > o.MaxBody && i > 0 {
			return i
		}
	}
	return len(reqs)
}

// EstimateSize returns at least the bytes r takes in a serialized Batch.
func EstimateSize(r *dcsync.Request) int {
	n := len(r.ID) + len(r.Origin) + len(r.Key) + len(r.Op) + len(r.Payload) + 40
	for k, v := range r.Header {
		n += len(k) + len(v) + 16
	}
	return n
}

// ErrStreamBroken is the retryable error of batches in flight on a
// connection or stream that broke before they were answered.
var ErrStreamBroken = errors.New("wire: connection to peer lost before the batch was answered")
