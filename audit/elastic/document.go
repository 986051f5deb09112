package elastic

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dcsync/dcsync"
)

// source is a record as stored in Elasticsearch. Times are pointers so that
// a zero time is left out rather than rejected by the date_nanos mapping.
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

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func toSource(r *dcsync.Record) source {
	s := source{ID: r.ID, DC: r.DC, Origin: r.Origin, Stage: r.Stage, Status: r.Status,
		Target: r.Target, Attempt: r.Attempt, Error: r.Error, Written: utcPtr(r.Written), Time: utcPtr(r.Time)}
	if q := r.Request; q != nil {
		s.Request = &storedRequest{ID: q.ID, Origin: q.Origin, Key: q.Key, Op: q.Op,
			Payload: q.Payload, Version: q.Version, Header: q.Header}
	}
	return s
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

// docID names a record's document after everything that tells two records
// apart, so a record appended twice — replayed from the spool, retried by a
// bulk request — is stored once. It starts with the request ID: IDs that
// share a prefix (UUIDv7s, ordered by time) make Elasticsearch's
// duplicate check on indexing cheaper than random IDs would.
func docID(r *dcsync.Record) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{r.DC, string(r.Stage), string(r.Status), r.Target} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(r.Attempt))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(r.Time.UnixNano()))
	h.Write(n[:])
	h.Write([]byte(r.ID))
	var sum [sha256.Size]byte
	hash := base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:12])
	if len(r.ID) > 128 { // beyond dcsync's limit: keep under Elasticsearch's 512 bytes
		return hash
	}
	return r.ID + "." + hash
}

// dayIndex returns the daily index that holds the records written on t's
// day, in UTC.
func dayIndex(prefix string, t time.Time) string {
	return prefix + "-" + t.UTC().Format("2006.01.02")
}

// doc is one record ready for the bulk API: the action line and the source
// line, each followed by a newline, exactly as a bulk body and the spool
// hold them. It implements elastic.BulkableRequest.
type doc struct {
	pair    string // action line + "\n" + source line + "\n"
	split   int    // index of the newline ending the action line
	spooled atomic.Bool
}

func newDoc(prefix string, r *dcsync.Record) (*doc, error) {
	src, err := json.Marshal(toSource(r))
	if err != nil {
		return nil, fmt.Errorf("elastic: encode record of %s: %w", r.ID, err)
	}
	var action struct {
		Index struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		} `json:"index"`
	}
	action.Index.Index, action.Index.ID = dayIndex(prefix, r.Written), docID(r)
	act, err := json.Marshal(action)
	if err != nil {
		return nil, fmt.Errorf("elastic: encode record of %s: %w", r.ID, err)
	}
	var b strings.Builder
	b.Grow(len(act) + len(src) + 2)
	b.Write(act)
	b.WriteByte('\n')
	b.Write(src)
	b.WriteByte('\n')
	return &doc{pair: b.String(), split: len(act)}, nil
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
