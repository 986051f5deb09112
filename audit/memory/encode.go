package memory

import (
	"encoding/binary"

	"github.com/dcsync/dcsync"
)

// appendRequest appends r to b in a compact form of the log's own: each
// field as a uvarint length and its bytes, the version as a uvarint. The
// log keeps requests so, in its arenas, rather than by pointer: a heap of
// them would be the bulk of what the garbage collector marks.
func appendRequest(b []byte, r *dcsync.Request) []byte {
	for _, s := range []string{r.ID, r.Origin, r.Key, r.Op} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Payload)))
	b = append(b, r.Payload...)
	b = binary.AppendUvarint(b, r.Version)
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for k, v := range r.Header {
		b = appendString(appendString(b, k), v)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeRequest decodes what appendRequest wrote.
func decodeRequest(b []byte) *dcsync.Request {
	d := decoder{b: b}
	r := &dcsync.Request{ID: d.string(), Origin: d.string(), Key: d.string(), Op: d.string()}
	if p := d.bytes(); len(p) > 0 {
		r.Payload = append([]byte(nil), p...)
	}
	r.Version = d.uvarint()
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

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }
