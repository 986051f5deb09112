package elastic

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// source is an entry as stored in Elasticsearch, as searches decode it;
// appendSource encodes it. Times are pointers: a zero time is left out.
// Written and Last are the earliest and the latest of the entry's writes:
// a trace finds the documents of a dcsync ID by them (see Records). IDs are
// indexed keywords, only for the writes a trace cannot find by time (see
// timeID). X is what is stored but not indexed: how many writes (N), the
// sum of their IDs' dcsync.IDHash (H), the writes packed (P: every ID and
// its written time, see appendPacked), and the requests of a process
// entry, as a batch of internal/wire (B).
//
// Documents of template version 3 and before have no P: IDs lists every
// write, packed by appendID, and W their written times as nanoseconds after
// Written. unpack reads both shapes into IDs and W.
type source struct {
	DC      string        `json:"dc"`
	Origin  string        `json:"origin"`
	Stage   dcsync.Stage  `json:"stage"`
	Status  dcsync.Status `json:"status"`
	Target  string        `json:"target,omitempty"`
	Attempt int           `json:"attempt"`
	Error   string        `json:"error,omitempty"`
	Written *time.Time    `json:"written,omitempty"`
	Last    *time.Time    `json:"last,omitempty"`
	Time    *time.Time    `json:"time,omitempty"`
	IDs     []string      `json:"ids,omitempty"`
	X       stored        `json:"x"`
	lost    int           // writes of a document whose P did not decode: unpack's error
}

// stored is the part of a document Elasticsearch keeps but does not index.
type stored struct {
	N int     `json:"n"`
	H uint64  `json:"h"`
	P []byte  `json:"p,omitempty"`
	W []int64 `json:"w,omitempty"`
	B []byte  `json:"b,omitempty"`
}

// appendSource appends the source document of d, as encoding/json would
// encode its source, but written by hand: Append encodes every entry, and
// encoding/json spent more than the rest of it together. The writes of d
// must share a second (split does that); first is the earliest written and
// sum is idSum(d.IDs).
func (e *encoder) appendSource(b []byte, d *dcsync.Entry, first time.Time, sum uint64) ([]byte, error) {
	b = appendField(b, `{"dc":`, d.DC)
	b = appendField(b, `,"origin":`, d.Origin)
	b = appendField(b, `,"stage":`, string(d.Stage))
	b = appendField(b, `,"status":`, string(d.Status))
	if d.Target != "" {
		b = appendField(b, `,"target":`, d.Target)
	}
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(d.Attempt), 10)
	if d.Error != "" {
		b = appendField(b, `,"error":`, d.Error)
	}
	e.keywords = e.appendPacked(e.packed[:0], e.keywords[:0], d, first)
	last := first
	for _, w := range d.Written {
		if w.After(last) {
			last = w
		}
	}
	b = e.written.appendField(b, `,"written":`, first)
	b = e.written.appendField(b, `,"last":`, last)
	b = e.time.appendField(b, `,"time":`, d.Time)
	if len(e.keywords) > 0 {
		b = append(b, `,"ids":[`...)
		for i, k := range e.keywords {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendID(b, d.IDs[k])
		}
		b = append(b, ']')
	}
	b = strconv.AppendInt(append(b, `,"x":{"n":`...), int64(len(d.IDs)), 10)
	b = strconv.AppendUint(append(b, `,"h":`...), sum, 10)
	b = append(b, `,"p":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.packed)
	b = append(b, '"')
	if reqs := requests(d); reqs != nil {
		e.body = e.body[:0]
		var err error
		if e.body, err = wire.Encode(e.body, reqs, wire.Proto, wire.Encoding_ENCODING_IDENTITY); err != nil {
			return b, fmt.Errorf("elastic: encode requests: %w", err)
		}
		b = append(b, `,"b":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.body)
		b = append(b, '"')
	}
	return append(b, '}', '}'), nil
}

// The kinds of a packed write, the low two bits of its header.
const (
	// packTimeID is a UUIDv7 accepted at the start of its timestamp's
	// millisecond, as every ID dcsync makes (the ID's timestamp and the
	// write's Written time are both its version's millisecond): the header
	// holds the zigzag of its millisecond less the previous time ID's (or
	// the document's first write's), and the ID's other 10 bytes follow.
	packTimeID = iota
	// packTimeIDAt is a UUIDv7 accepted later within its timestamp's
	// millisecond: as packTimeID, then the uvarint of the nanoseconds into
	// that millisecond it was accepted at.
	packTimeIDAt
	// packUUID is any other canonical UUID: the header is the kind alone,
	// then the zigzag uvarint of its written time less the previous
	// write's, in nanoseconds (a delta from a zero time would not fit in
	// the header's 62 bits), and its 16 bytes.
	packUUID
	// packString is any other ID: as packUUID, but the uvarint of its
	// length and its bytes in place of the 16 bytes.
	packString
)

// appendPacked appends to p the writes of d, one after the other, each a
// uvarint header whose low two bits are its kind (packTimeID...) and what
// that kind says follows, and returns the indices of the writes a trace
// cannot find by time (packUUID, packString), appended to keywords. An ID
// dcsync made costs 11 bytes, 15 in base64, where its keyword cost 26 and
// its written time 2 to 10 more; the times are deltas from first, the
// earliest written, which the document stores.
func (e *encoder) appendPacked(p []byte, keywords []int, d *dcsync.Entry, first time.Time) []int {
	prevNs := unixNano(first)
	prevMs := floorDiv(prevNs, 1e6)
	for i, id := range d.IDs {
		var w time.Time
		if i < len(d.Written) {
			w = d.Written[i]
		}
		ns := unixNano(w)
		u, isUUID := canonicalUUID(id)
		if ms, ok := timeID(u, isUUID, w); ok {
			at := ns - ms*1e6
			kind := uint64(packTimeID)
			if at != 0 {
				kind = packTimeIDAt
			}
			p = binary.AppendUvarint(p, zigzag(ms-prevMs)<<2|kind)
			p = append(p, u[6:]...)
			if at != 0 {
				p = binary.AppendUvarint(p, uint64(at))
			}
			prevMs, prevNs = ms, ns
			continue
		}
		keywords = append(keywords, i)
		if isUUID {
			p = binary.AppendUvarint(append(p, packUUID), zigzag(ns-prevNs))
			p = append(p, u[:]...)
		} else {
			p = binary.AppendUvarint(append(p, packString), zigzag(ns-prevNs))
			p = append(binary.AppendUvarint(p, uint64(len(id))), id...)
		}
		prevNs = ns
	}
	e.packed = p
	return keywords
}

// timeID reports whether a trace finds a write accepted at w by time, and
// the millisecond it looks in: its ID is a canonical UUID (isUUID), u, of
// version 7, and w falls in the millisecond of its timestamp. Every ID
// dcsync makes does (see Request.Time); a user's own UUIDv7, taken at
// another time, does not, and keeps a keyword.
func timeID(u uuid.UUID, isUUID bool, w time.Time) (ms int64, ok bool) {
	if !isUUID || w.IsZero() || !isV7(u) {
		return 0, false
	}
	ms = uuidMs(u)
	ns := w.UnixNano()
	return ms, ns >= ms*1e6 && ns-ms*1e6 < 1e6
}

// isV7 reports whether u is an RFC 9562 UUID of version 7.
func isV7(u uuid.UUID) bool { return u[6]>>4 == 7 && u[8]>>6 == 2 }

// uuidMs returns the 48-bit millisecond timestamp of a UUIDv7.
func uuidMs(u uuid.UUID) int64 {
	return int64(binary.BigEndian.Uint64(u[0:8]) >> 16)
}

// unpack reads the writes of s — the IDs of P, or of IDs in a document
// of template version 3 — into IDs, every write's, and W, their written
// times after Written. A P that does not decode is an error: the document
// is unreadable.
func (s *source) unpack() error {
	if len(s.X.P) == 0 {
		for k, id := range s.IDs {
			s.IDs[k] = unpackID(id)
		}
		return nil
	}
	var base int64
	if s.Written != nil {
		base = unixNano(*s.Written)
	}
	p := s.X.P
	n := min(s.X.N, len(p)) // a write takes a byte at least
	ids, ws := make([]string, 0, max(n, 0)), make([]int64, 0, max(n, 0))
	prevNs, prevMs := base, floorDiv(base, 1e6)
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return 0, false
		}
		p = p[k:]
		return v, true
	}
	for len(p) > 0 {
		h, ok := next()
		if !ok {
			return errPacked
		}
		var id string
		switch h & 3 {
		case packTimeID, packTimeIDAt:
			ms := prevMs + unzigzag(h>>2)
			if ms < 0 || ms >= 1<<48 || len(p) < 10 {
				return errPacked
			}
			var u uuid.UUID
			binary.BigEndian.PutUint64(u[0:8], uint64(ms)<<16)
			copy(u[6:], p[:10])
			p = p[10:]
			at := uint64(0)
			if h&3 == packTimeIDAt {
				if at, ok = next(); !ok || at >= 1e6 {
					return errPacked
				}
			}
			id, prevMs, prevNs = u.String(), ms, ms*1e6+int64(at)
		case packUUID:
			delta, ok := next()
			if !ok || len(p) < 16 {
				return errPacked
			}
			id, prevNs = uuid.UUID(p[:16]).String(), prevNs+unzigzag(delta)
			p = p[16:]
		default:
			delta, ok := next()
			var size uint64
			if ok {
				size, ok = next()
			}
			if !ok || size > uint64(len(p)) {
				return errPacked
			}
			id, prevNs = string(p[:size]), prevNs+unzigzag(delta)
			p = p[size:]
		}
		ids, ws = append(ids, id), append(ws, prevNs-base)
	}
	if len(ids) != s.X.N {
		return fmt.Errorf("%w: %d writes, document says %d", errPacked, len(ids), s.X.N)
	}
	s.IDs, s.X.W = ids, ws
	return nil
}

// errPacked is the error of a document whose packed writes do not decode.
var errPacked = errors.New("elastic: stored writes do not decode")

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// unixNano returns t in Unix nanoseconds, 0 for the zero time (which
// documents leave out).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// requests returns the requests of d, one per write, or nil when it
// carries none. A missing one is stored as an empty request.
func requests(d *dcsync.Entry) []*dcsync.Request {
	if !slices.ContainsFunc(d.Requests, func(r *dcsync.Request) bool { return r != nil }) {
		return nil
	}
	reqs := make([]*dcsync.Request, len(d.IDs))
	for i := range reqs {
		if i < len(d.Requests) && d.Requests[i] != nil {
			reqs[i] = d.Requests[i]
		} else {
			reqs[i] = &dcsync.Request{}
		}
	}
	return reqs
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

// written returns when the i-th write of s was accepted.
func (s *source) written(i int) time.Time {
	var base int64
	if s.Written != nil {
		base = unixNano(*s.Written)
	}
	if i < len(s.X.W) {
		base += s.X.W[i]
	}
	if base == 0 && (s.Written == nil || s.Written.IsZero()) {
		return time.Time{}
	}
	return time.Unix(0, base)
}

// record returns the record of the i-th write of s; reqs are its
// requests, decoded, or nil.
func (s *source) record(i int, reqs []*dcsync.Request) dcsync.Record {
	r := dcsync.Record{ID: s.IDs[i], DC: s.DC, Origin: s.Origin, Stage: s.Stage, Status: s.Status,
		Target: s.Target, Attempt: s.Attempt, Error: s.Error, Written: s.written(i)}
	if s.Time != nil {
		r.Time = *s.Time
	}
	if i < len(reqs) && reqs[i].ID != "" {
		r.Request = reqs[i]
	}
	return r
}

// requests decodes the requests s stores, or returns nil.
func (s *source) requests() ([]*dcsync.Request, error) {
	if len(s.X.B) == 0 || len(s.IDs) == 0 {
		return nil, nil
	}
	reqs, err := wire.Decode(s.X.B, wire.Proto, wire.Encoding_ENCODING_IDENTITY, len(s.X.B), len(s.IDs))
	if err != nil {
		return nil, fmt.Errorf("elastic: stored requests: %w", err)
	}
	return reqs, nil
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
	prefix            string
	key, body, packed []byte
	keywords          []int // the writes of the document being encoded that keep a keyword
	written, time     clock
}

// appendPair appends the bulk lines of d, the action and the source, each
// followed by a newline, for each second its writes were accepted in: a
// document's writes share a second, so that digests add up documents.
func (e *encoder) appendPair(b []byte, d *dcsync.Entry) ([]byte, int, error) {
	n := 0
	for _, part := range split(d) {
		first := part.Written[0]
		for _, w := range part.Written {
			if w.Before(first) {
				first = w
			}
		}
		b = append(b, `{"index":{"_index":"`...)
		b = append(append(b, e.prefix...), '-') // the prefix needs no escaping: New checks it
		b = e.written.appendDay(b, first)
		b = append(b, `","_id":"`...)
		sum := idSum(part.IDs)
		b = e.appendDocID(b, &part, sum)
		b = append(b, `"}}`+"\n"...)
		var err error
		if b, err = e.appendSource(b, &part, first, sum); err != nil {
			return b, n, err
		}
		b = append(b, '\n')
		n++
	}
	return b, n, nil
}

// split returns d as entries whose writes share a second of their written
// time: d itself when they do, as dcsync's entries do.
func split(d *dcsync.Entry) []dcsync.Entry {
	if len(d.Written) < len(d.IDs) { // no written times: all in the zero second
		e := *d
		e.Written = make([]time.Time, len(d.IDs))
		copy(e.Written, d.Written)
		return []dcsync.Entry{e}
	}
	if len(d.IDs) == 0 {
		return nil
	}
	sec := d.Written[0].Unix()
	if !slices.ContainsFunc(d.Written, func(w time.Time) bool { return w.Unix() != sec }) {
		return []dcsync.Entry{*d}
	}
	var parts []dcsync.Entry
	at := map[int64]int{}
	for i, id := range d.IDs {
		s := d.Written[i].Unix()
		k, ok := at[s]
		if !ok {
			k = len(parts)
			at[s] = k
			p := *d
			p.IDs, p.Written, p.Requests = nil, nil, nil
			parts = append(parts, p)
		}
		p := &parts[k]
		p.IDs, p.Written = append(p.IDs, id), append(p.Written, d.Written[i])
		if i < len(d.Requests) {
			p.Requests = append(p.Requests, d.Requests[i])
		}
	}
	return parts
}

// idSum returns the sum of the IDHash of ids, which documents store.
func idSum(ids []string) uint64 {
	var sum uint64
	for _, id := range ids {
		sum += dcsync.IDHash(id)
	}
	return sum
}

// appendDocID appends the document ID of d (whose idSum is sum), named after everything that
// tells two entries apart — its kind, time, first and last write, number
// of writes and the sum of their IDHash — so an entry appended twice —
// replayed from the spool, retried by a bulk request — is stored once. It
// starts with the first request ID, packed: IDs that share a prefix
// (UUIDv7s, ordered by time) make Elasticsearch's duplicate check on
// indexing cheaper than random IDs would.
func (e *encoder) appendDocID(b []byte, d *dcsync.Entry, sum uint64) []byte {
	k := e.key[:0]
	first, last := d.IDs[0], d.IDs[len(d.IDs)-1]
	for _, s := range [...]string{d.DC, d.Origin, string(d.Stage), string(d.Status), d.Target, first, last} {
		k = append(binary.BigEndian.AppendUint64(k, uint64(len(s))), s...)
	}
	k = binary.BigEndian.AppendUint64(k, uint64(d.Attempt))
	k = binary.BigEndian.AppendUint64(k, uint64(d.Time.UnixNano()))
	k = binary.BigEndian.AppendUint64(k, uint64(len(d.IDs)))
	k = binary.BigEndian.AppendUint64(k, sum)
	e.key = k
	hash := sha256.Sum256(k)
	if len(first) <= 128 { // beyond dcsync's limit, Elasticsearch's 512 bytes come near
		mark := len(b)
		b = appendID(b, first)
		b = append(append(b[:mark], b[mark+1:len(b)-1]...), '.') // unquoted
	}
	return base64.RawURLEncoding.AppendEncode(b, hash[:12])
}

// appendID appends the keyword stored for a request ID, as a JSON string:
// a canonical (lower-case) UUID, as dcsync makes them, as "~" and its 16
// bytes in unpadded base64url — 23 characters instead of 36, in every
// document that carries it — and any other ID as it is. dcsync refuses
// IDs with a "~", so the two cannot meet.
func appendID(b []byte, id string) []byte {
	if u, ok := canonicalUUID(id); ok {
		b = append(b, '"', '~')
		b = base64.RawURLEncoding.AppendEncode(b, u[:])
		return append(b, '"')
	}
	return appendString(b, id)
}

// packID returns the keyword stored for id.
func packID(id string) string {
	b := appendID(nil, id)
	var s string
	_ = json.Unmarshal(b, &s)
	return s
}

// unpackID returns the request ID a stored keyword names.
func unpackID(k string) string {
	if len(k) != 23 || k[0] != '~' {
		return k
	}
	var u uuid.UUID
	if n, err := base64.RawURLEncoding.Decode(u[:], []byte(k[1:])); err != nil || n != 16 {
		return k
	}
	return u.String()
}

// canonicalUUID parses id when it is a UUID in its canonical, lower-case
// form, which u.String() gives back. It is on the encoder's path for every
// write and stage, so it reads the hex digits itself: uuid.Parse, behind a
// scan for upper case, cost a third of encoding a document.
func canonicalUUID(id string) (u uuid.UUID, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	for i, at := range uuidDigits {
		hi, lo := lowerHex[id[at]], lowerHex[id[at+1]]
		if hi|lo == 0xff {
			return uuid.UUID{}, false
		}
		u[i] = hi<<4 | lo
	}
	return u, true
}

// uuidDigits are where each byte's two hex digits start in a canonical UUID.
var uuidDigits = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// lowerHex maps a lower-case hex digit to its value, anything else to 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// chunk is a run of records ready for the bulk API: an action line and a
// source line per record, each followed by a newline, exactly as a bulk body
// and the spool hold them. It implements elastic.BulkableRequest, as one
// request of the BulkProcessor that carries n actions to Elasticsearch:
// handing records over a chunk at a time rather than one by one spares a
// channel send, two allocations and three Source calls per record.
type chunk struct {
	lines   string
	n       int // documents
	records int // writes of the documents
	spooled atomic.Bool
	settled atomic.Bool // its bulk request ended once
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
