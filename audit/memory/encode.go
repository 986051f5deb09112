package memory

import (
	"encoding/binary"

	"github.com/dcsync/dcsync"
)

// appendRequest appends r to b but for its ID, which the write holds, and
// its payload, payloads[payload] of the chunk, in a compact form of the
// log's own: each string as a uvarint length and its bytes, the version
// and the payload's index as uvarints. The log keeps requests so, in its
// arenas, rather than by pointer: a heap of them would be the bulk of what
// the garbage collector marks, and a request's memory could not be reused
// once it is delivered.
func appendRequest(b []byte, r *dcsync.Request, payload int) []byte {
	for _, s := range []string{r.Origin, r.Key, r.Op} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, r.Version)
	b = binary.AppendUvarint(b, uint64(payload))
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for k, v := range r.Header {
		b = appendString(appendString(b, k), v)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// request decodes the request of w, what appendRequest wrote, with copies
// of its payload and header: the caller's to modify.
func (c *chunk) request(w *write) *dcsync.Request {
	d := decoder{b: c.bytes(w.req)}
	r := &dcsync.Request{ID: c.id(w), Origin: d.string(), Key: d.string(), Op: d.string()}
	r.Version = d.uvarint()
	if p := c.payloads[d.uvarint()]; len(p) > 0 {
		r.Payload = append([]byte(nil), p...)
	}
	if n := d.uvarint(); n > 0 {
		r.Header = make(map[string]string, n)
		for range n {
			k := d.string()
			r.Header[k] = d.string()
		}
	}
	return r
}

type decoder struct{ b []byte }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
