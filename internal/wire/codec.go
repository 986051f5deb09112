package wire

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dcsync/dcsync"
)

// Format is how a Batch or Results is serialized.
type Format int

const (
	// Proto is binary protobuf, what the senders use.
	Proto Format = iota
	// JSON is protojson, for debugging by hand.
	JSON
)

// Encode appends reqs to dst as a Batch serialized in f and compressed as
// enc says.
func Encode(dst []byte, reqs []*dcsync.Request, f Format, enc Encoding) ([]byte, error) {
	if enc == Encoding_ENCODING_IDENTITY {
		return encode(dst, reqs, f)
	}
	if enc != Encoding_ENCODING_GZIP {
		return nil, fmt.Errorf("wire: unknown encoding %v", enc)
	}
	buf := GetBuffer()
	defer PutBuffer(buf)
	raw, err := encode((*buf)[:0], reqs, f)
	if err != nil {
		return nil, err
	}
	*buf = raw
	return compress(dst, raw)
}

func encode(dst []byte, reqs []*dcsync.Request, f Format) ([]byte, error) {
	if f == JSON {
		return marshal(dst, toBatch(reqs), f)
	}
	return appendBatch(dst, reqs), nil
}

// toBatch builds a Batch that shares the requests' strings and payloads.
func toBatch(reqs []*dcsync.Request) *Batch {
	slab := make([]Request, len(reqs))
	b := &Batch{Requests: make([]*Request, len(reqs))}
	for i, r := range reqs {
		w := &slab[i]
		w.Id, w.Origin, w.Key, w.Op = r.ID, r.Origin, r.Key, r.Op
		w.Payload, w.Version, w.Header = r.Payload, r.Version, r.Header
		b.Requests[i] = w
	}
	return b
}

func marshal(dst []byte, m proto.Message, f Format) ([]byte, error) {
	var out []byte
	var err error
	if f == JSON {
		out, err = protojson.Marshal(m)
		out = append(dst, out...)
	} else {
		out, err = proto.MarshalOptions{}.MarshalAppend(dst, m)
	}
	if err != nil {
		return nil, fmt.Errorf("wire: marshal: %w", err)
	}
	return out, nil
}

// Decode reads a Batch serialized in f and compressed as enc says. It
// refuses, before decoding the requests, a body that decompresses to more
// than maxBody bytes (maxBody/4 for JSON) or that holds more than maxBatch
// requests, so that decoding costs a small multiple of maxBody. Every
// error matches dcsync.ErrInvalid.
func Decode(body []byte, f Format, enc Encoding, maxBody, maxBatch int) ([]*dcsync.Request, error) {
	switch enc {
	case Encoding_ENCODING_IDENTITY:
	case Encoding_ENCODING_GZIP:
		buf := GetBuffer()
		defer PutBuffer(buf)
		raw, err := decompress((*buf)[:0], body, maxBody)
		if err != nil {
			return nil, err
		}
		*buf, body = raw, raw
	default:
		return nil, fmt.Errorf("%w: unknown encoding %d", dcsync.ErrInvalid, enc)
	}
	var batch Batch
	if f == JSON {
		// JSON is for debugging by hand, and protojson takes up to 25
		// times a body's size: it is held to a quarter of maxBody, and
		// counted first (a million empty requests cost fifty times).
		if len(body) > maxBody/4 {
			return nil, fmt.Errorf("%w: JSON body of %d bytes, limit %d (a quarter of the protobuf limit)",
				dcsync.ErrBatchTooLarge, len(body), maxBody/4)
		}
		if n := countJSON(body); n > maxBatch {
			return nil, fmt.Errorf("%w: %d requests or more, limit %d", dcsync.ErrBatchTooLarge, n, maxBatch)
		}
		if err := protojson.Unmarshal(body, &batch); err != nil {
			return nil, fmt.Errorf("%w: malformed JSON batch: %v", dcsync.ErrInvalid, err)
		}
		if len(batch.Requests) > maxBatch {
			return nil, fmt.Errorf("%w: %d requests, limit %d", dcsync.ErrBatchTooLarge, len(batch.Requests), maxBatch)
		}
	} else {
		n, err := Count(body)
		if err != nil {
			return nil, err
		}
		if n > maxBatch {
			return nil, fmt.Errorf("%w: %d requests, limit %d", dcsync.ErrBatchTooLarge, n, maxBatch)
		}
		return decodeBatch(body, n)
	}
	return fromBatch(&batch), nil
}

// countJSON returns at least how many requests a JSON Batch holds: the
// values at depth two (the top-level object's arrays), outside strings.
// It reads malformed JSON too; protojson refuses it afterwards.
func countJSON(body []byte) int {
	n, depth := 0, 0
	inString, escaped, fresh := false, false, false // fresh: a value may start at depth 2
	for _, c := range body {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			if depth == 2 && fresh {
				n++
			}
			depth++
			fresh = depth == 2
			continue
		case '}', ']':
			depth--
		case ',':
			fresh = depth == 2
			continue
		case '"':
			inString = true
		}
		if depth == 2 && fresh && c != '}' && c != ']' {
			n++
		}
		fresh = false
	}
	return n
}

// fromBatch converts a decoded Batch, sharing its strings and payloads.
func fromBatch(b *Batch) []*dcsync.Request {
	slab := make([]dcsync.Request, len(b.Requests))
	reqs := make([]*dcsync.Request, len(b.Requests))
	for i, w := range b.Requests {
		r := &slab[i]
		if w != nil {
			r.ID, r.Origin, r.Key, r.Op = w.Id, w.Origin, w.Key, w.Op
			r.Payload, r.Version, r.Header = w.Payload, w.Version, w.Header
		}
		reqs[i] = r
	}
	return reqs
}

// Count returns how many requests a serialized Batch holds, reading only
// the field tags and lengths, so an oversized batch is refused before its
// requests are decoded.
func Count(body []byte) (int, error) {
	n := 0
	for len(body) > 0 {
		num, typ, tl := consumeTag(body)
		if tl < 0 {
			return 0, fmt.Errorf("%w: malformed batch: %v", dcsync.ErrInvalid, protowire.ParseError(tl))
		}
		vl := protowire.ConsumeFieldValue(num, typ, body[tl:])
		if vl < 0 {
			return 0, fmt.Errorf("%w: malformed batch: %v", dcsync.ErrInvalid, protowire.ParseError(vl))
		}
		if num == 1 && typ == protowire.BytesType {
			n++
		}
		body = body[tl+vl:]
	}
	return n, nil
}

// bufs holds body buffers, for compression and for the transports.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// GetBuffer returns an empty buffer for a body, from a pool.
func GetBuffer() *[]byte { return bufs.Get().(*[]byte) }

// PutBuffer returns a buffer to the pool; nothing may use it afterwards.
// Buffers larger than a default body are dropped, so that one huge batch
// does not stay in memory.
func PutBuffer(b *[]byte) {
	if cap(*b) <= 2*DefaultMaxBody {
		*b = (*b)[:0]
		bufs.Put(b)
	}
}

var (
	gzipWriters = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // fast: links are cheaper than CPU here
		return w
	}}
	gzipReaders sync.Pool
)

// appender is an io.Writer appending to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func compress(dst, raw []byte) ([]byte, error) {
	w := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(w)
	out := &appender{dst}
	w.Reset(out)
	if _, err := w.Write(raw); err != nil {
		return nil, fmt.Errorf("wire: compress: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("wire: compress: %w", err)
	}
	return out.b, nil
}

// decompress appends the gunzipped body to dst, refusing more than max
// bytes of output: a small body must not expand into a huge one.
func decompress(dst, body []byte, limit int) ([]byte, error) {
	var err error
	r, _ := gzipReaders.Get().(*gzip.Reader)
	if r == nil {
		r, err = gzip.NewReader(bytes.NewReader(body))
	} else {
		err = r.Reset(bytes.NewReader(body))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: malformed gzip body: %v", dcsync.ErrInvalid, err)
	}
	defer gzipReaders.Put(r)
	out := bytes.NewBuffer(dst)
	n, err := out.ReadFrom(io.LimitReader(r, int64(limit)+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: malformed gzip body: %v", dcsync.ErrInvalid, err)
	case n > int64(limit):
		return nil, fmt.Errorf("%w: body decompresses to more than %d bytes", dcsync.ErrBatchTooLarge, limit)
	}
	return out.Bytes(), nil
}

// MarshalResults appends res serialized in f to dst.
func MarshalResults(dst []byte, res *Results, f Format) ([]byte, error) {
	return marshal(dst, res, f)
}

// UnmarshalResults decodes res serialized in f.
func UnmarshalResults(body []byte, f Format, res *Results) error {
	var err error
	if f == JSON {
		err = protojson.Unmarshal(body, res)
	} else {
		err = proto.Unmarshal(body, res)
	}
	if err != nil {
		return fmt.Errorf("wire: malformed results: %w", err)
	}
	return nil
}
