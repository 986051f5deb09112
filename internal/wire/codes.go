package wire

import (
	"errors"
	"strings"

	"github.com/dcsync/dcsync"
)

// sentinels maps codes to the dcsync errors they stand for, most specific
// first, so CodeOf picks the narrowest code an error matches.
var sentinels = []struct {
	code Code
	err  error
}{
	{Code_CODE_UNKNOWN_PEER, dcsync.ErrUnknownPeer},
	{Code_CODE_FORGED_ORIGIN, dcsync.ErrForgedOrigin},
	{Code_CODE_UNAUTHENTICATED, dcsync.ErrUnauthenticated},
	{Code_CODE_BATCH_TOO_LARGE, dcsync.ErrBatchTooLarge},
	{Code_CODE_TOO_LARGE, dcsync.ErrTooLarge},
	{Code_CODE_INVALID, dcsync.ErrInvalid},
	{Code_CODE_IN_FLIGHT, dcsync.ErrInFlight},
	{Code_CODE_CLOSED, dcsync.ErrClosed},
	{Code_CODE_CLOCK_SKEW, dcsync.ErrClockSkew},
}

// CodeOf returns the code that carries err over the wire: CODE_OK for nil,
// the code of the dcsync error it matches, CODE_RETRY for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return Code_CODE_OK
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return Code_CODE_RETRY
}

// Permanent reports whether a batch or request failing with c can never
// succeed on retry.
func (c Code) Permanent() bool {
	switch c {
	case Code_CODE_INVALID, Code_CODE_TOO_LARGE, Code_CODE_BATCH_TOO_LARGE,
		Code_CODE_UNAUTHENTICATED, Code_CODE_UNKNOWN_PEER, Code_CODE_FORGED_ORIGIN:
		return true
	}
	return false
}

// RemoteError is a failure reported by the receiving datacenter. It
// matches, with errors.Is, the dcsync error its code stands for, so
// dcsync.IsPermanent tells the sender whether to retry.
type RemoteError struct {
	Code    Code
	Message string // the receiver's error text
}

// Error returns the receiver's message.
func (e *RemoteError) Error() string { return "remote: " + e.Message }

// Unwrap returns the dcsync error of the code. A closed receiver is not
// mapped to dcsync.ErrClosed: that would read as this Syncer being closed.
func (e *RemoteError) Unwrap() error {
	if e.Code == Code_CODE_CLOSED {
		return nil
	}
	for _, s := range sentinels {
		if s.code == e.Code {
			return s.err
		}
	}
	return nil
}

// Err returns the error for code and message: nil for CODE_OK.
func Err(code Code, message string) error {
	if code == Code_CODE_OK {
		return nil
	}
	if message == "" {
		message = code.String()
	}
	return &RemoteError{Code: code, Message: message}
}

// ResultsOf encodes the outcome of collecting a batch of n requests: the
// per-request codes of a *dcsync.BatchError, or the code of a whole-batch
// error.
func ResultsOf(err error) *Results {
	if err == nil {
		return &Results{}
	}
	var be *dcsync.BatchError
	if errors.As(err, &be) {
		res := &Results{Results: make([]*Result, len(be.Errs))}
		slab := make([]Result, len(be.Errs))
		for i, e := range be.Errs {
			slab[i].Code = CodeOf(e)
			if e != nil {
				slab[i].Message = message(e)
			}
			res.Results[i] = &slab[i]
		}
		return res
	}
	return &Results{Code: CodeOf(err), Message: message(err)}
}

// maxMessage bounds the text of one error on the wire.
const maxMessage = 1024

// message returns err's text as valid UTF-8 of at most maxMessage bytes:
// errors may quote the bytes of a malformed body.
func message(err error) string {
	m := err.Error()
	if len(m) > maxMessage {
		m = m[:maxMessage] + "…"
	}
	return strings.ToValidUTF8(m, "\ufffd")
}

// ErrorOf decodes the answer to a batch of n requests into what a
// dcsync.Sender returns: nil, a *dcsync.BatchError, or a whole-batch error.
func ErrorOf(res *Results, n int) error {
	if res.Code != Code_CODE_OK {
		return Err(res.Code, res.Message)
	}
	if len(res.Results) == 0 {
		return nil
	}
	if len(res.Results) != n {
		return &RemoteError{Code: Code_CODE_RETRY,
			Message: "protocol error: results do not match the batch sent"}
	}
	var errs []error
	for i, r := range res.Results {
		if err := Err(r.GetCode(), r.GetMessage()); err != nil {
			if errs == nil {
				errs = make([]error, n)
			}
			errs[i] = err
		}
	}
	if errs == nil {
		return nil
	}
	return &dcsync.BatchError{Errs: errs}
}
