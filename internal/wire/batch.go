package wire

import (
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dcsync/dcsync"
)

// A hand-written codec for Batch, the hot path of both transports. It
// reads and writes exactly the wire.proto schema — TestCodecMatchesProto
// and FuzzDecode hold it to proto.Marshal and proto.Unmarshal — but goes
// straight between bytes and dcsync.Request: no intermediate messages, one
// allocation per request (its strings and, when small, its payload; a
// large payload has one of its own) instead of seven.

// Field numbers of Request in wire.proto.
const (
	fieldID      = 1
	fieldOrigin  = 2
	fieldKey     = 3
	fieldOp      = 4
	fieldPayload = 5
	fieldVersion = 6
	fieldHeader  = 7
	fieldMapKey  = 1
	fieldMapVal  = 2
	fieldBatch   = 1 // Batch.requests
)

// appendBatch appends reqs serialized as a Batch. It sizes each request
// once, and grows b a request at a time (rarely: b is usually a pooled
// buffer with room).
func appendBatch(b []byte, reqs []*dcsync.Request) []byte {
	for _, r := range reqs {
		n := requestSize(r)
		b = slices.Grow(b, 1+protowire.SizeVarint(uint64(n))+n)
		b = protowire.AppendTag(b, fieldBatch, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = appendRequest(b, r)
	}
	return b
}

func requestSize(r *dcsync.Request) int {
	n := stringSize(r.ID) + stringSize(r.Origin) + stringSize(r.Key) + stringSize(r.Op) + bytesSize(len(r.Payload))
	if r.Version != 0 {
		n += 1 + protowire.SizeVarint(r.Version)
	}
	if len(r.Header) == 0 {
		return n // ranging over even a nil map costs an iterator
	}
	for k, v := range r.Header {
		n += 1 + protowire.SizeBytes(entrySize(k, v))
	}
	return n
}

// stringSize is the size of a non-repeated string or bytes field with a
// one-byte tag: nothing when empty, as proto3 writes it.
func stringSize(s string) int { return bytesSize(len(s)) }

func bytesSize(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

// entrySize is the size of a map entry; like protobuf-go, it always writes
// both key and value.
func entrySize(k, v string) int {
	return 2 + protowire.SizeBytes(len(k)) + protowire.SizeBytes(len(v))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendRequest(b []byte, r *dcsync.Request) []byte {
	b = appendString(b, fieldID, r.ID)
	b = appendString(b, fieldOrigin, r.Origin)
	b = appendString(b, fieldKey, r.Key)
	b = appendString(b, fieldOp, r.Op)
	if len(r.Payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, r.Payload)
	}
	if r.Version != 0 {
		b = protowire.AppendTag(b, fieldVersion, protowire.VarintType)
		b = protowire.AppendVarint(b, r.Version)
	}
	if len(r.Header) == 0 {
		return b
	}
	for k, v := range r.Header {
		b = protowire.AppendTag(b, fieldHeader, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(k, v)))
		b = protowire.AppendTag(b, fieldMapKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, fieldMapVal, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}

// errMalformed is the error of a batch that is not a serialized Batch.
func errMalformed(what string, code int) error {
	if code < 0 {
		return fmt.Errorf("%w: malformed batch: %s: %v", dcsync.ErrInvalid, what, protowire.ParseError(code))
	}
	return fmt.Errorf("%w: malformed batch: %s", dcsync.ErrInvalid, what)
}

// decodeBatch decodes a serialized Batch of n requests (see Count).
// Unknown fields, and known fields of an unexpected wire type, are skipped
// as protobuf-go does; strings must be valid UTF-8, as proto3 requires.
func decodeBatch(b []byte, n int) ([]*dcsync.Request, error) {
	slab := make([]dcsync.Request, n)
	reqs := make([]*dcsync.Request, n)
	i := 0
	for len(b) > 0 {
		num, typ, tl := consumeTag(b)
		if tl < 0 {
			return nil, errMalformed("tag", tl)
		}
		b = b[tl:]
		if num == fieldBatch && typ == protowire.BytesType {
			msg, ml := consumeBytes(b)
			if ml < 0 {
				return nil, errMalformed("request", ml)
			}
			if err := decodeRequest(msg, &slab[i]); err != nil {
				return nil, fmt.Errorf("request %d: %w", i, err)
			}
			reqs[i] = &slab[i]
			i++
			b = b[ml:]
			continue
		}
		vl := protowire.ConsumeFieldValue(num, typ, b)
		if vl < 0 {
			return nil, errMalformed("field", vl)
		}
		b = b[vl:]
	}
	return reqs, nil
}

// consumeTag is protowire.ConsumeTag refusing, as protobuf-go does, field
// numbers above the largest valid one. A one-byte tag (fields 1 to 15,
// all of wire.proto's) is read inline.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0]>>3 != 0 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

// consumeBytes is protowire.ConsumeBytes, reading a length under 128
// inline.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
		n := int(b[0])
		return b[1 : 1+n : 1+n], 1 + n
	}
	return protowire.ConsumeBytes(b)
}

// span is where a string field's bytes are, to be copied into one string.
type span struct {
	num      protowire.Number
	from, to int // in the request's encoding
}

// decodeRequest decodes one Request into r. Its strings share one
// allocation, its payload another.
func decodeRequest(msg []byte, r *dcsync.Request) error {
	var spans [8]span // the usual fields; more only with headers
	fields := spans[:0]
	var payload []byte
	var hasPayload bool
	strLen, headers := 0, 0
	for off := 0; off < len(msg); {
		num, typ, tl := consumeTag(msg[off:])
		if tl < 0 {
			return errMalformed("tag", tl)
		}
		off += tl
		switch {
		case num >= fieldID && num <= fieldOp && typ == protowire.BytesType:
			v, vl := consumeBytes(msg[off:])
			if vl < 0 {
				return errMalformed("string", vl)
			}
			from := off + vl - len(v)
			fields = append(fields, span{num, from, from + len(v)})
			strLen += len(v)
			off += vl
		case num == fieldHeader && typ == protowire.BytesType:
			// Headers take no span: a request of many tiny entries must
			// cost a small multiple of its size, so they are found again
			// below rather than remembered here.
			v, vl := consumeBytes(msg[off:])
			if vl < 0 {
				return errMalformed("string", vl)
			}
			strLen += len(v)
			headers++
			off += vl
		case num == fieldPayload && typ == protowire.BytesType:
			v, vl := consumeBytes(msg[off:])
			if vl < 0 {
				return errMalformed("payload", vl)
			}
			payload, hasPayload = v, true
			off += vl
		case num == fieldVersion && typ == protowire.VarintType:
			v, vl := protowire.ConsumeVarint(msg[off:])
			if vl < 0 {
				return errMalformed("version", vl)
			}
			r.Version = v
			off += vl
		default:
			vl := protowire.ConsumeFieldValue(num, typ, msg[off:])
			if vl < 0 {
				return errMalformed("field", vl)
			}
			off += vl
		}
	}
	// Copy every string field into one string and slice it; headers are
	// map entries whose key and value are sliced the same way. A small
	// payload shares that allocation, ahead of the strings: one allocation
	// a request, and a string kept longer than its request keeps at most
	// smallPayload bytes more alive.
	var mem []byte
	switch {
	case hasPayload && len(payload) <= smallPayload:
		mem = make([]byte, len(payload), len(payload)+strLen)
		copy(mem, payload)
		r.Payload = mem[:len(payload):len(payload)] // appending to it must not reach the strings
	case hasPayload:
		r.Payload = append([]byte{}, payload...)
		fallthrough
	default:
		mem = make([]byte, 0, strLen)
	}
	strs := len(mem)
	for _, f := range fields {
		mem = append(mem, msg[f.from:f.to]...)
	}
	if headers > 0 {
		eachHeader(msg, func(e []byte) { mem = append(mem, e...) })
	}
	// The bytes after the payload are never written again: they become
	// the strings.
	all := unsafe.String(unsafe.SliceData(mem[strs:]), len(mem)-strs)
	ascii := isASCII(all) // then every string is valid UTF-8
	pos := 0
	if headers > 0 {
		hpos := 0 // the headers follow the other strings in all
		for _, f := range fields {
			hpos += f.to - f.from
		}
		r.Header = make(map[string]string, headers)
		var err error
		eachHeader(msg, func(e []byte) {
			if err == nil {
				err = decodeEntry(e, all[hpos:hpos+len(e)], r)
			}
			hpos += len(e)
		})
		if err != nil {
			return err
		}
	}
	for _, f := range fields {
		s := all[pos : pos+f.to-f.from]
		pos += len(s)
		if !ascii && !utf8.ValidString(s) {
			return errMalformed("string field is not UTF-8", 0)
		}
		switch f.num {
		case fieldID:
			r.ID = s
		case fieldOrigin:
			r.Origin = s
		case fieldKey:
			r.Key = s
		case fieldOp:
			r.Op = s
		}
	}
	return nil
}

// smallPayload is the largest payload decodeRequest allocates together
// with the request's strings.
const smallPayload = 1024

// isASCII reports whether s is all ASCII, eight bytes at a time.
func isASCII(s string) bool {
	for len(s) >= 8 {
		if binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))&0x8080808080808080 != 0 {
			return false
		}
		s = s[8:]
	}
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// eachHeader calls f with the encoding of each header entry of a request
// that decodeRequest's first pass found well-formed.
func eachHeader(msg []byte, f func(entry []byte)) {
	for off := 0; off < len(msg); {
		num, typ, tl := consumeTag(msg[off:])
		off += tl
		if num == fieldHeader && typ == protowire.BytesType {
			v, vl := consumeBytes(msg[off:])
			f(v)
			off += vl
			continue
		}
		off += protowire.ConsumeFieldValue(num, typ, msg[off:])
	}
}

// decodeEntry decodes a header map entry into r.Header: b is its
// encoding, s a copy of b whose substrings become the key and value.
func decodeEntry(b []byte, s string, r *dcsync.Request) error {
	var k, v string
	for off := 0; off < len(b); {
		num, typ, tl := consumeTag(b[off:])
		if tl < 0 {
			return errMalformed("header tag", tl)
		}
		off += tl
		if (num == fieldMapKey || num == fieldMapVal) && typ == protowire.BytesType {
			val, vl := consumeBytes(b[off:])
			if vl < 0 {
				return errMalformed("header", vl)
			}
			from := off + vl - len(val)
			str := s[from : from+len(val)]
			if !utf8.ValidString(str) {
				return errMalformed("header is not UTF-8", 0)
			}
			if num == fieldMapKey {
				k = str
			} else {
				v = str
			}
			off += vl
			continue
		}
		vl := protowire.ConsumeFieldValue(num, typ, b[off:])
		if vl < 0 {
			return errMalformed("header field", vl)
		}
		off += vl
	}
	if r.Header == nil {
		r.Header = map[string]string{}
	}
	r.Header[k] = v
	return nil
}
