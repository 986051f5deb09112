package elastic

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
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

// appendSource appends the source document of r, as encoding/json would
// encode its source, but written by hand: Append encodes every record of
// every write, and encoding/json spent more than the rest of it together.
func (e *encoder) appendSource(b []byte, r *dcsync.Record) []byte {
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
	b = e.written.appendField(b, `,"written":`, r.Written)
	b = e.time.appendField(b, `,"time":`, r.Time)
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

// clock formats times as time.RFC3339Nano in UTC, keeping the text of the
// last second it formatted: the records an encoder sees in a row mostly share
// their second, and time.Time.AppendFormat cost a fifth of encoding them.
type clock struct {
	sec  int64
	text []byte // "2006-01-02T15:04:05" of sec, in UTC; empty until first use
}

const secondLayout = "2006-01-02T15:04:05"

// second returns the text of t's second, in UTC.
func (c *clock) second(t time.Time) []byte {
	if s := t.Unix(); s != c.sec || len(c.text) == 0 {
		c.sec, c.text = s, t.UTC().AppendFormat(c.text[:0], secondLayout)
	}
	return c.text
}

// appendField appends a field holding t, unless t is zero: the date_nanos
// mapping refuses times before 1970.
func (c *clock) appendField(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(append(append(b, name...), '"'), c.second(t)...)
	if ns := t.Nanosecond(); ns != 0 { // nine digits less trailing zeros, as RFC3339Nano
		var d [10]byte
		d[0] = '.'
		for i := 9; i > 0; i-- {
			d[i], ns = byte('0'+ns%10), ns/10
		}
		n := len(d)
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return append(b, 'Z', '"')
}

// appendDay appends t's day in dayLayout, in UTC.
func (c *clock) appendDay(b []byte, t time.Time) []byte {
	s := c.second(t)
	if len(s) != len(secondLayout) { // a year beyond four digits
		return t.UTC().AppendFormat(b, dayLayout)
	}
	return append(b, s[0], s[1], s[2], s[3], '.', s[5], s[6], '.', s[8], s[9])
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	return append(appendEscaped(append(b, '"'), s), '"')
}

// plain tells the bytes a JSON string holds as they are: printable ASCII
// but the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendEscaped appends s escaped for a JSON string, with invalid UTF-8
// replaced as encoding/json does.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		// Copy the run of bytes that need no escaping at once.
		j := i
		for j < len(s) && plain[s[j]] {
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

// encoder turns records into bulk lines, reusing its buffers; a Log keeps a
// pool of them for its goroutines.
type encoder struct {
	prefix        string
	key           []byte
	written, time clock
}

// appendPair appends the bulk lines of r, the action and the source, each
// followed by a newline.
func (e *encoder) appendPair(b []byte, r *dcsync.Record) []byte {
	b = append(b, `{"index":{"_index":"`...)
	b = append(append(b, e.prefix...), '-') // the prefix needs no escaping: New checks it
	b = e.written.appendDay(b, r.Written)
	b = append(b, `","_id":"`...)
	b = e.appendID(b, r)
	b = append(b, `"}}`+"\n"...)
	return append(e.appendSource(b, r), '\n')
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

// chunk is a run of records ready for the bulk API: an action line and a
// source line per record, each followed by a newline, exactly as a bulk body
// and the spool hold them. It implements elastic.BulkableRequest, as one
// request of the BulkProcessor that carries n actions to Elasticsearch:
// handing records over a chunk at a time rather than one by one spares a
// channel send, two allocations and three Source calls per record.
type chunk struct {
	lines   string
	n       int // records
	spooled atomic.Bool
}

// String implements elastic.BulkableRequest.
func (c *chunk) String() string { return c.lines }

// Source implements elastic.BulkableRequest. The bulk service ends every
// line it is given with a newline: the last one is left to it.
func (c *chunk) Source() ([]string, error) { return []string{c.lines[:len(c.lines)-1]}, nil }

// action returns the index and ID named by the action line of the i-th
// record of c, for logging a refusal.
func (c *chunk) action(i int) (index, id string) {
	text := c.lines
	for ; i > 0; i-- {
		_, text, _ = strings.Cut(text, "\n")
		_, text, _ = strings.Cut(text, "\n")
	}
	line, _, _ := strings.Cut(text, "\n")
	var a struct {
		Index struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		} `json:"index"`
	}
	_ = json.Unmarshal([]byte(line), &a)
	return a.Index.Index, a.Index.ID
}
