package elastic

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dcsync/dcsync"
)

// source is a record as stored in Elasticsearch, as Trails decodes it;
// appendSource encodes it. Times are pointers: a zero time is left out.
type source struct {
	ID      string         `json:"id"`
	DC      string         `json:"dc"`
	Origin  string         `json:"origin"`
	Stage   dcsync.Stage   `json:"stage"`
	Status  dcsync.Status  `json:"status"`
	Target  string         `json:"target,omitempty"`
	Attempt int            `json:"attempt"`
	Error   string         `json:"error,omitempty"`
	Written *time.Time     `json:"written,omitempty"`
	Time    *time.Time     `json:"time,omitempty"`
	Request *storedRequest `json:"request,omitempty"`
}

// storedRequest is the write carried by a process record. The mapping
// stores it without indexing it: it is read back, never searched.
type storedRequest struct {
	ID      string            `json:"id"`
	Origin  string            `json:"origin"`
	Key     string            `json:"key"`
	Op      string            `json:"op,omitempty"`
	Payload []byte            `json:"payload,omitempty"`
	Version uint64            `json:"version,string"` // beyond float64's exact range
	Header  map[string]string `json:"header,omitempty"`
}

// appendSource appends the source document of r, as the JSON encoding of
// toSource(r) would be but written by hand: Append encodes every record of
// every write, and encoding/json spent more than the rest of it together.
func appendSource(b []byte, r *dcsync.Record) []byte {
	b = appendField(b, `{"id":`, r.ID)
	b = appendField(b, `,"dc":`, r.DC)
	b = appendField(b, `,"origin":`, r.Origin)
	b = appendField(b, `,"stage":`, string(r.Stage))
	b = appendField(b, `,"status":`, string(r.Status))
	if r.Target != "" {
		b = appendField(b, `,"target":`, r.Target)
	}
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(r.Attempt), 10)
	if r.Error != "" {
		b = appendField(b, `,"error":`, r.Error)
	}
	b = appendTime(b, `,"written":`, r.Written)
	b = appendTime(b, `,"time":`, r.Time)
	if q := r.Request; q != nil {
		b = appendField(b, `,"request":{"id":`, q.ID)
		b = appendField(b, `,"origin":`, q.Origin)
		b = appendField(b, `,"key":`, q.Key)
		if q.Op != "" {
			b = appendField(b, `,"op":`, q.Op)
		}
		if len(q.Payload) > 0 {
			b = append(b, `,"payload":"`...)
			b = base64.StdEncoding.AppendEncode(b, q.Payload)
			b = append(b, '"')
		}
		b = strconv.AppendUint(append(b, `,"version":"`...), q.Version, 10)
		b = append(b, '"')
		if len(q.Header) > 0 {
			b = append(b, `,"header":{`...)
			for i, k := range slices.Sorted(maps.Keys(q.Header)) {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = appendString(append(b, ':'), q.Header[k])
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendField(b []byte, name, v string) []byte { return appendString(append(b, name...), v) }

// appendTime appends a field holding t in UTC, unless t is zero: the
// date_nanos mapping refuses times before 1970.
func appendTime(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = t.UTC().AppendFormat(append(append(b, name...), '"'), time.RFC3339Nano)
	return append(b, '"')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	return append(appendEscaped(append(b, '"'), s), '"')
}

// appendEscaped appends s escaped for a JSON string, with invalid UTF-8
// replaced as encoding/json does.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		// Copy the run of bytes that need no escaping at once.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < utf8.RuneSelf {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

func (s *source) record() dcsync.Record {
	r := dcsync.Record{ID: s.ID, DC: s.DC, Origin: s.Origin, Stage: s.Stage, Status: s.Status,
		Target: s.Target, Attempt: s.Attempt, Error: s.Error}
	if s.Written != nil {
		r.Written = *s.Written
	}
	if s.Time != nil {
		r.Time = *s.Time
	}
	if q := s.Request; q != nil {
		r.Request = &dcsync.Request{ID: q.ID, Origin: q.Origin, Key: q.Key, Op: q.Op,
			Payload: q.Payload, Version: q.Version, Header: q.Header}
	}
	return r
}

// dayLayout names the daily indices.
const dayLayout = "2006.01.02"

// dayIndex returns the daily index that holds the records written on t's
// day, in UTC.
func dayIndex(prefix string, t time.Time) string {
	return prefix + "-" + t.UTC().Format(dayLayout)
}

// encoder turns records into docs, reusing its buffers; a Log keeps a pool
// of them for its goroutines.
type encoder struct {
	prefix          string
	buf, key, spill []byte
}

// doc encodes r.
func (e *encoder) doc(r *dcsync.Record) *doc {
	b, split := e.appendPair(e.buf[:0], r)
	e.buf = b
	return &doc{pair: string(b), split: split}
}

// appendPair appends the bulk lines of r, the action and the source, and
// returns where the source line starts, less its newline.
func (e *encoder) appendPair(b []byte, r *dcsync.Record) ([]byte, int) {
	start := len(b)
	b = append(b, `{"index":{"_index":"`...)
	b = append(append(b, e.prefix...), '-') // the prefix needs no escaping: New checks it
	b = r.Written.UTC().AppendFormat(b, dayLayout)
	b = append(b, `","_id":"`...)
	b = e.appendID(b, r)
	b = append(b, `"}}`...)
	split := len(b) - start
	return append(appendSource(append(b, '\n'), r), '\n'), split
}

// appendID appends the document ID of r, named after everything that tells
// two records apart, so a record appended twice — replayed from the spool,
// retried by a bulk request — is stored once. It starts with the request
// ID: IDs that share a prefix (UUIDv7s, ordered by time) make
// Elasticsearch's duplicate check on indexing cheaper than random IDs
// would.
func (e *encoder) appendID(b []byte, r *dcsync.Record) []byte {
	k := e.key[:0]
	for _, s := range [...]string{r.ID, r.DC, string(r.Stage), string(r.Status), r.Target} {
		k = append(binary.BigEndian.AppendUint64(k, uint64(len(s))), s...)
	}
	k = binary.BigEndian.AppendUint64(k, uint64(r.Attempt))
	k = binary.BigEndian.AppendUint64(k, uint64(r.Time.UnixNano()))
	e.key = k
	sum := sha256.Sum256(k)
	if len(r.ID) <= 128 { // beyond dcsync's limit, Elasticsearch's 512 bytes come near
		b = append(appendEscaped(b, r.ID), '.')
	}
	return base64.RawURLEncoding.AppendEncode(b, sum[:12])
}

// doc is one record ready for the bulk API: the action line and the source
// line, each followed by a newline, exactly as a bulk body and the spool
// hold them. It implements elastic.BulkableRequest.
type doc struct {
	pair    string // action line + "\n" + source line + "\n"
	split   int    // index of the newline ending the action line
	spooled atomic.Bool
}

// parseDoc reads back one pair from the spool.
func parseDoc(pair string) *doc {
	return &doc{pair: pair, split: strings.IndexByte(pair, '\n')}
}

// String implements elastic.BulkableRequest.
func (d *doc) String() string { return d.pair }

// Source implements elastic.BulkableRequest.
func (d *doc) Source() ([]string, error) {
	return []string{d.pair[:d.split], d.pair[d.split+1 : len(d.pair)-1]}, nil
}
