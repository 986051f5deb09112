package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dcsync/dcsync"
)

// Fields of a stream entry that carries a request. The ID is kept apart from
// the encoded request so that redis-cli shows which write an entry is.
const (
	fieldID      = "id"
	fieldRequest = "r"
)

// codecVersion is the first byte of an encoded request, so that a later
// encoding can be told from this one.
const codecVersion = 1

// ErrMalformed is the error of a stream entry that does not hold a request
// this package can decode. Such entries are dead-lettered at once.
var ErrMalformed = errors.New("redis: malformed stream entry")

// entryValues returns the fields of the stream entry that carries req. A
// request read from a stream is passed on in the encoding it came in, found
// in ctx, rather than encoded again.
func entryValues(ctx context.Context, req *dcsync.Request) []any {
	if raw, ok := ctx.Value(rawKey{}).(map[*dcsync.Request]string); ok {
		if r, ok := raw[req]; ok {
			return []any{fieldID, req.ID, fieldRequest, r}
		}
	}
	return []any{fieldID, req.ID, fieldRequest, encode(req)}
}

type rawKey struct{}

// withRaw returns a context in which entryValues finds the encodings of
// requests decoded from stream entries.
func withRaw(ctx context.Context, raw map[*dcsync.Request]string) context.Context {
	return context.WithValue(ctx, rawKey{}, raw)
}

// encode returns the compact binary form of req: a version byte, then
// ID, Origin, Key, Op and Payload as length-prefixed strings, Version as a
// varint, and the Header as a count and name/value pairs.
func encode(req *dcsync.Request) []byte {
	n := 1 + 5*binary.MaxVarintLen32 + len(req.ID) + len(req.Origin) + len(req.Key) +
		len(req.Op) + len(req.Payload) + 2*binary.MaxVarintLen64
	for k, v := range req.Header {
		n += 2*binary.MaxVarintLen32 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion)
	b = appendString(b, req.ID)
	b = appendString(b, req.Origin)
	b = appendString(b, req.Key)
	b = appendString(b, req.Op)
	b = appendString(b, string(req.Payload)) // the compiler does not copy here
	b = binary.AppendUvarint(b, req.Version)
	b = binary.AppendUvarint(b, uint64(len(req.Header)))
	for k, v := range req.Header {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry returns the request carried by the fields of a stream entry.
func decodeEntry(values map[string]any) (*dcsync.Request, error) {
	id, _ := values[fieldID].(string)
	data, ok := values[fieldRequest].(string)
	if !ok {
		return nil, fmt.Errorf("%w: no %q field", ErrMalformed, fieldRequest)
	}
	req, err := decode(data)
	if err != nil {
		return nil, err
	}
	if req.ID != id {
		return nil, fmt.Errorf("%w: field %q is %q, the request's ID %q", ErrMalformed, fieldID, id, req.ID)
	}
	return req, nil
}

// decode parses what encode produced. It never panics on bad input.
func decode(data string) (*dcsync.Request, error) {
	d := decoder{s: data}
	if v := d.byte(); v != codecVersion {
		return nil, fmt.Errorf("%w: unknown encoding version %d", ErrMalformed, v)
	}
	req := &dcsync.Request{ID: d.string(), Origin: d.string(), Key: d.string(), Op: d.string()}
	if p := d.string(); len(p) > 0 {
		req.Payload = []byte(p)
	}
	req.Version = d.uvarint()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.s)) { // each pair takes at least two bytes
			return nil, fmt.Errorf("%w: header of %d fields in %d bytes", ErrMalformed, n, len(d.s))
		}
		req.Header = make(map[string]string, n)
		for range n {
			k := d.string()
			req.Header[k] = d.string()
		}
	}
	if d.err == nil && len(d.s) > 0 {
		d.err = fmt.Errorf("%w: %d bytes after the request", ErrMalformed, len(d.s))
	}
	if d.err != nil {
		return nil, d.err
	}
	return req, nil
}

// decoder reads from s, remembering the first error; reads after an error
// return zero values.
type decoder struct {
	s   string
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	d.s = ""
}

func (d *decoder) byte() byte {
	if len(d.s) == 0 {
		d.fail("version")
		return 0
	}
	b := d.s[0]
	d.s = d.s[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for shift, i := 0, 0; i < len(d.s) && i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		c := d.s[i]
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			d.s = d.s[i+1:]
			return v
		}
	}
	d.fail("varint")
	return 0
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)) {
		d.fail("string")
		return ""
	}
	s := d.s[:n]
	d.s = d.s[n:]
	return s
}
