package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/dcsync/dcsync"
)

// Fields of a stream entry. An entry carries one request in "id" and "r"
// (the ID apart from the encoding, so that redis-cli shows which write it
// is), or a batch of them: their count in "n" and their encodings in "b",
// each prefixed by its length as a uvarint. This package writes batches;
// it reads both.
const (
	fieldID      = "id"
	fieldRequest = "r"
	fieldCount   = "n"
	fieldBatch   = "b"
)

// codecVersion is the first byte of an encoded request, so that a later
// encoding can be told from this one.
const codecVersion = 1

// maxEntryRequests bounds the requests of a batch entry, and so the work
// one entry can cost a reader: Node's BatchSize must stay within it.
const maxEntryRequests = 1 << 16

// minFrame is the size of the smallest encoded request: the version byte,
// four string lengths, the payload's length, the version and the header's
// count. A shorter frame is no request.
const minFrame = 8

// maxShortFrames is how many frames shorter than minFrame an entry may
// hold; each fails alone. An entry with more is malformed as a whole:
// thousands of empty frames are an attack, not a bug, and would cost far
// more than their bytes to report one by one.
const maxShortFrames = 16

// ErrMalformed is the error of a stream entry, or of a request in a batch
// entry, that this package cannot decode. What is malformed is
// dead-lettered at once.
var ErrMalformed = errors.New("redis: malformed stream entry")

// entryValues returns the fields of the stream entry that carries req
// alone, in the encoding raw holds for it if any.
func entryValues(raw map[*dcsync.Request]string, req *dcsync.Request) []any {
	return []any{fieldID, req.ID, fieldRequest, encodingOf(raw, req)}
}

// batchValues returns the fields of the stream entry that carries count
// requests whose frames are concatenated in frames.
func batchValues(count int, frames []byte) []any {
	return []any{fieldCount, count, fieldBatch, frames}
}

// appendFrame appends the encoding of one request of a batch entry to b.
func appendFrame(b []byte, enc string) []byte { return appendString(b, enc) }

// appendRequestFrame appends the frame of req, encoded here, to b.
func appendRequestFrame(b []byte, req *dcsync.Request) []byte {
	b = binary.AppendUvarint(b, uint64(encodedSize(req)))
	return appendRequest(b, req)
}

// encodeBatch returns the frames of reqs, for batchValues, in a buffer
// from getBlob: for a request read from a stream, the encoding it came in,
// which raw holds, rather than encoded again.
func encodeBatch(raw map[*dcsync.Request]string, reqs []*dcsync.Request) []byte {
	n := 0
	for _, req := range reqs {
		if r, ok := raw[req]; ok {
			n += binary.MaxVarintLen32 + len(r)
		} else {
			n += binary.MaxVarintLen32 + encodedSize(req)
		}
	}
	b := getBlob(n)
	for _, req := range reqs {
		if r, ok := raw[req]; ok {
			b = appendFrame(b, r)
		} else {
			b = appendRequestFrame(b, req)
		}
	}
	return b
}

// encodeEntries encodes reqs as the frames of entries of at most max
// requests each (encodeBatch), calling add with each entry's count and
// frames, and returns the frames' buffers, for putBlobs once the client
// has written them.
func encodeEntries(raw map[*dcsync.Request]string, reqs []*dcsync.Request, max int, add func(count int, frames []byte)) [][]byte {
	var blobs [][]byte
	for start := 0; start < len(reqs); start += max {
		chunk := reqs[start:min(start+max, len(reqs))]
		blob := encodeBatch(raw, chunk)
		blobs = append(blobs, blob)
		add(len(chunk), blob)
	}
	return blobs
}

// blobPool recycles the buffers that the frames of an entry are gathered in
// before the client writes them: they are as large as entries, and one is
// needed for every batch a hop hands on.
var blobPool sync.Pool

// maxPooledBlob bounds the buffers blobPool keeps.
const maxPooledBlob = 1 << 20

// getBlob returns an empty buffer of capacity n at least.
func getBlob(n int) []byte {
	if b, ok := blobPool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

// putBlob gives b back to getBlob, once the client has written it.
func putBlob(b []byte) {
	if cap(b) <= maxPooledBlob {
		blobPool.Put(&b)
	}
}

// putBlobs gives back each of blobs.
func putBlobs(blobs [][]byte) {
	for _, b := range blobs {
		putBlob(b)
	}
}

// encodingOf returns the encoding of req: for a request read from a
// stream, the one it came in, which raw holds, rather than encoded again.
func encodingOf(raw map[*dcsync.Request]string, req *dcsync.Request) string {
	if r, ok := raw[req]; ok {
		return r
	}
	return string(encode(req))
}

// encode returns the compact binary form of req: a version byte, then
// ID, Origin, Key, Op and Payload as length-prefixed strings, Version as a
// varint, and the Header as a count and name/value pairs.
func encode(req *dcsync.Request) []byte {
	return appendRequest(make([]byte, 0, encodedSize(req)), req)
}

// appendRequest appends the encoding of req to b.
func appendRequest(b []byte, req *dcsync.Request) []byte {
	b = append(b, codecVersion)
	b = appendString(b, req.ID)
	b = appendString(b, req.Origin)
	b = appendString(b, req.Key)
	b = appendString(b, req.Op)
	b = binary.AppendUvarint(b, uint64(len(req.Payload)))
	b = append(b, req.Payload...)
	b = binary.AppendUvarint(b, req.Version)
	b = binary.AppendUvarint(b, uint64(len(req.Header)))
	for k, v := range req.Header {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

// encodedSize returns the length of the encoding of req.
func encodedSize(req *dcsync.Request) int {
	n := 1 + stringSize(req.ID) + stringSize(req.Origin) + stringSize(req.Key) + stringSize(req.Op) +
		uvarintSize(uint64(len(req.Payload))) + len(req.Payload) +
		uvarintSize(req.Version) + uvarintSize(uint64(len(req.Header)))
	for k, v := range req.Header {
		n += stringSize(k) + stringSize(v)
	}
	return n
}

func stringSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

func uvarintSize(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// frame is one request of a stream entry, as decoded.
type frame struct {
	req *dcsync.Request // nil when it could not be decoded
	raw string          // its encoding
	err error           // why it could not be decoded
}

// decodeFrames returns the requests a stream entry carries, one for an
// entry of fields "id" and "r", the batch for an entry of fields "n" and
// "b". An error is the entry's as a whole: nothing in it can be read. A
// request of a batch that cannot be decoded has its own error, and the
// others are returned as they are.
func decodeFrames(values map[string]any) ([]frame, error) {
	data, ok := values[fieldBatch].(string)
	if !ok {
		if _, single := values[fieldRequest]; single || values[fieldCount] == nil {
			req, err := decodeEntry(values)
			if err != nil {
				return nil, err
			}
			raw, _ := values[fieldRequest].(string)
			return []frame{{req: req, raw: raw}}, nil
		}
		return nil, fmt.Errorf("%w: no %q field", ErrMalformed, fieldBatch)
	}
	countField, _ := values[fieldCount].(string)
	count, err := strconv.Atoi(countField)
	if err != nil || count < 1 || count > maxEntryRequests || count > len(data) {
		return nil, fmt.Errorf("%w: field %q is %.32q, not a count of requests in %d bytes", ErrMalformed, fieldCount, countField, len(data))
	}
	// The frames are walked before anything is allocated for them: the
	// count an entry declares is only believed once it is what is there.
	if err := checkFrames(data, count); err != nil {
		return nil, err
	}
	frames := make([]frame, 0, count)
	reqs := make([]dcsync.Request, count) // one allocation for the entry's requests
	var payloads []byte                   // and few for their payloads
	d := decoder{s: data}
	for i := 0; i < count; i++ {
		raw := d.string() // checked above
		f := frame{raw: raw, req: &reqs[i]}
		if f.err = decodeInto(f.req, raw, &payloads, len(d.s)); f.err != nil {
			f.req, f.err = nil, fmt.Errorf("request %d of the entry: %w", i, f.err)
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// checkFrames reports whether data holds exactly count length-prefixed
// frames, no more than maxShortFrames of them shorter than minFrame.
func checkFrames(data string, count int) error {
	d := decoder{s: data}
	short := 0
	for i := range count {
		f := d.string()
		if d.err != nil {
			return fmt.Errorf("%w: request %d of %d", d.err, i, count)
		}
		if len(f) < minFrame {
			if short++; short > maxShortFrames {
				return fmt.Errorf("%w: more than %d of its %d requests are shorter than any request", ErrMalformed, maxShortFrames, count)
			}
		}
	}
	if len(d.s) > 0 {
		return fmt.Errorf("%w: %d bytes after %d requests", ErrMalformed, len(d.s), count)
	}
	return nil
}

// decodeEntry returns the request carried by the fields "id" and "r" of a
// stream entry.
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
	req := &dcsync.Request{}
	if err := decodeInto(req, data, nil, 0); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeInto parses what encode produced into req. With slab set, the
// payload is copied into *slab, which grows by chunks of up to 32 KiB (no
// more than the ahead bytes left of the entry need), so that the requests
// of an entry share a few allocations.
func decodeInto(req *dcsync.Request, data string, slab *[]byte, ahead int) error {
	d := decoder{s: data}
	if v := d.byte(); v != codecVersion {
		return fmt.Errorf("%w: unknown encoding version %d", ErrMalformed, v)
	}
	req.ID, req.Origin, req.Key, req.Op = d.string(), d.string(), d.string(), d.string()
	if p := d.string(); len(p) > 0 {
		if slab == nil {
			req.Payload = []byte(p)
		} else {
			if cap(*slab)-len(*slab) < len(p) {
				*slab = make([]byte, 0, max(len(p), min(ahead+len(p), 32<<10)))
			}
			at := len(*slab)
			*slab = append(*slab, p...)
			req.Payload = (*slab)[at:len(*slab):len(*slab)] // an append copies, never overwrites a neighbour
		}
	}
	req.Version = d.uvarint()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.s)) { // each pair takes at least two bytes
			return fmt.Errorf("%w: header of %d fields in %d bytes", ErrMalformed, n, len(d.s))
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
	return d.err
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
