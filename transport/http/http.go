// Package http carries dcsync batches over HTTP: a Sender that posts a
// peer's batches to its collector endpoint, and a Handler that serves a
// dcsync.Collector there. Import it as dchttp, beside net/http:
//
//	import dchttp "github.com/dcsync/dcsync/transport/http"
//
// A batch is one POST. Its body is a protobuf Batch (internal/wire's
// wire.proto; Content-Type application/x-protobuf), optionally gzipped
// (Content-Encoding: gzip). The response carries the result of each
// request, so the sender retries only the requests that failed. Every
// batch is signed with the secret the two datacenters share; the handler
// refuses an unknown datacenter, a bad signature, a stale timestamp or a
// replayed batch before it decodes anything.
//
// Serve the handler with NewServer, whose timeouts bound slow and idle
// clients; the handler itself reads nothing of a body before the stamp's
// headers check out, never allocates from a declared Content-Length, and
// bounds the bytes of bodies not yet authenticated (HandlerConfig.MaxPending).
// SECURITY.md in the repository has the threat model.
//
// The Sender is a dcsync.Pipeliner: each of the Syncer's lanes to the peer
// (dcsync.Delivery.Workers, two by default) pipelines its batches on a
// connection of its own, as many in flight as the peer's window allows, and
// the handler answers them in order. The defaults fill a link of tens of
// milliseconds; see docs/wan.md for the arithmetic.
//
// # Status codes
//
// 200: the batch was collected; the body says per request whether it was
// applied. 400 malformed batch or invalid request, 413 body or batch over
// the limit, 415 unknown Content-Type or Content-Encoding: the sender does
// not retry (dcsync.ErrInvalid). 401 unknown datacenter, bad signature,
// stale timestamp or replay, 403 request whose origin is not the sender:
// not retried either (dcsync.ErrUnauthenticated). 503: retry later.
// Every failure answer carries a Results whose message says why.
//
// # Debugging with curl
//
// The handler also takes and answers JSON (Content-Type application/json,
// the protojson form of the Batch, payloads in base64). Sign it by hand —
// the signed message is "dcsync-v2", the sender, the receiver (empty when
// no Dcsync-To header names it), the timestamp, the nonce and the
// Content-Encoding (empty for none), one a line, then the body:
//
//	body='{"requests":[{"id":"r1","origin":"unicom","key":"k","op":"set","payload":"aGk=","version":"1"}]}'
//	ts=$(date +%s%N); nonce=$(openssl rand -hex 16)
//	sig=$(printf 'dcsync-v2\n%s\n%s\n%s\n%s\n\n%s' unicom telecom "$ts" "$nonce" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//	curl -sS http://telecom:8080/dcsync -H 'Content-Type: application/json' \
//	  -H "Dcsync-From: unicom" -H "Dcsync-To: telecom" -H "Dcsync-Timestamp: $ts" \
//	  -H "Dcsync-Nonce: $nonce" -H "Dcsync-Signature: $sig" -d "$body"
//
// The receiver is named as SenderConfig.To names it; a handler with
// HandlerConfig.RequireTo refuses a batch that names none (for one without,
// leave out the header and the name, keeping its empty line).
package http

import (
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
)

// Header names of the stamp that authenticates a batch.
const (
	HeaderFrom      = "Dcsync-From"      // sending datacenter
	HeaderTimestamp = "Dcsync-Timestamp" // Unix nanoseconds, decimal
	HeaderNonce     = "Dcsync-Nonce"     // 16 random bytes, hex
	HeaderSignature = "Dcsync-Signature" // HMAC-SHA256, hex
	HeaderTo        = "Dcsync-To"        // receiving datacenter, optional
)

// Content types of batches and results.
const (
	ContentTypeProto = "application/x-protobuf"
	ContentTypeJSON  = "application/json"
)

// setStamp writes st into h.
func setStamp(h http.Header, st *auth.Stamp) {
	h[HeaderFrom] = []string{st.From}
	h[HeaderTimestamp] = []string{strconv.FormatInt(st.Timestamp, 10)}
	h[HeaderNonce] = []string{hex.EncodeToString(st.Nonce[:])}
	h[HeaderSignature] = []string{hex.EncodeToString(st.Signature[:])}
	if st.To != "" {
		h[HeaderTo] = []string{st.To}
	}
}

// pipeHead returns the request line and the fixed headers of a pipe's
// POSTs to u, or nil when the host or a name is not printable ASCII.
func pipeHead(u *url.URL, from, to string, enc wire.Encoding) []byte {
	for _, s := range []string{u.Host, u.RequestURI(), from, to} {
		for i := range len(s) {
			if s[i] < ' ' || s[i] > '~' {
				return nil
			}
		}
	}
	b := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: dcsync\r\nContent-Type: %s\r\n%s: %s\r\n",
		u.RequestURI(), u.Host, ContentTypeProto, HeaderFrom, from)
	if to != "" {
		b = fmt.Appendf(b, "%s: %s\r\n", HeaderTo, to)
	}
	if enc == wire.Encoding_ENCODING_GZIP {
		b = append(b, "Content-Encoding: gzip\r\n"...)
	}
	return b
}

// appendHead appends the request line and headers of a pipe's POST of a
// body of n bytes signed by st, as setStamp and net/http would write them.
func (s *Sender) appendHead(b []byte, n int, st *auth.Stamp) []byte {
	b = append(b, s.head...)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\n"+HeaderTimestamp+": "...)
	b = strconv.AppendInt(b, st.Timestamp, 10)
	b = append(b, "\r\n"+HeaderNonce+": "...)
	b = hex.AppendEncode(b, st.Nonce[:])
	b = append(b, "\r\n"+HeaderSignature+": "...)
	b = hex.AppendEncode(b, st.Signature[:])
	return append(b, "\r\n\r\n"...)
}

// stampOf reads the stamp from h, whatever h holds: every field is
// bounded before it is kept.
func stampOf(h http.Header) (auth.Stamp, error) {
	return auth.ParseStamp(h.Get(HeaderFrom), h.Get(HeaderTo), h.Get(HeaderTimestamp), h.Get(HeaderNonce),
		h.Get(HeaderSignature), func(i int) string { return stampHeaders[i] + " header" })
}

// stampHeaders are the headers of a stamp, in auth.ParseStamp's order.
var stampHeaders = [...]string{HeaderFrom, HeaderTo, HeaderTimestamp, HeaderNonce, HeaderSignature}

// formatOf returns the wire format of a Content-Type.
func formatOf(contentType string) (wire.Format, bool) {
	if contentType == ContentTypeProto { // what senders send: no parsing
		return wire.Proto, true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mt {
	case ContentTypeProto, "application/protobuf", "application/vnd.google.protobuf":
		return wire.Proto, true
	case ContentTypeJSON:
		return wire.JSON, true
	}
	return 0, false
}

func contentType(f wire.Format) string {
	if f == wire.JSON {
		return ContentTypeJSON
	}
	return ContentTypeProto
}

// statusOf maps a result code to the HTTP status answering the batch.
func statusOf(c wire.Code) int {
	switch c {
	case wire.Code_CODE_OK:
		return http.StatusOK
	case wire.Code_CODE_INVALID:
		return http.StatusBadRequest
	case wire.Code_CODE_TOO_LARGE, wire.Code_CODE_BATCH_TOO_LARGE:
		return http.StatusRequestEntityTooLarge
	case wire.Code_CODE_UNAUTHENTICATED, wire.Code_CODE_UNKNOWN_PEER:
		return http.StatusUnauthorized
	case wire.Code_CODE_FORGED_ORIGIN:
		return http.StatusForbidden
	}
	return http.StatusServiceUnavailable
}

// errorOfStatus is the error of an answer that carries no Results, from a
// proxy for instance: 4xx statuses that can never succeed are permanent.
func errorOfStatus(status int, text string) error {
	msg := fmt.Sprintf("peer answered %d %s", status, text)
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: %s", dcsync.ErrInvalid, msg)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %s", dcsync.ErrUnauthenticated, msg)
	}
	return &wire.RemoteError{Code: wire.Code_CODE_RETRY, Message: msg}
}
