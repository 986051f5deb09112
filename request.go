package dcsync

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/dcsync/dcsync/internal/hlc"
)

// Request is one write. It travels unchanged from the datacenter where it
// entered to every other datacenter and names every audit record of its way.
type Request struct {
	ID      string            // global unique; Write assigns a UUIDv7 when empty
	Origin  string            // datacenter where the write entered; set by Write
	Key     string            // entity key: ordering, conflicts, sharding
	Op      string            // application-defined: "set", "delete", ...
	Payload []byte            // application-defined body
	Version uint64            // hybrid logical clock at origin; set by Write
	Header  map[string]string // propagated metadata (trace context, tenant)
}

// Time returns the wall-clock time at which the write was accepted at its
// origin, read from its Version.
func (r *Request) Time() time.Time { return hlc.Time(r.Version) }

// Newer reports whether r wins over a write to the same key that carries
// version and origin: the greater Version wins, and equal versions are
// ordered by origin name. Processors that apply only newer writes converge
// to the same value in every datacenter whatever the delivery order.
func (r *Request) Newer(version uint64, origin string) bool {
	if r.Version != version {
		return r.Version > version
	}
	return r.Origin > origin
}

// Clone returns a deep copy of r.
func (r *Request) Clone() *Request {
	c := *r
	c.Payload = append([]byte(nil), r.Payload...)
	if r.Header != nil {
		c.Header = maps.Clone(r.Header)
	}
	return &c
}

// Limits bounds what a datacenter accepts. The zero value of each field
// selects its default.
type Limits struct {
	MaxPayload int // bytes of Payload; default 1 MiB
	MaxKey     int // bytes of Key; default 1 KiB
	MaxHeader  int // bytes of all Header names and values; default 16 KiB
	MaxBatch   int // requests in one collected batch; default 4096
}

// Default limits.
const (
	DefaultMaxPayload = 1 << 20
	DefaultMaxKey     = 1 << 10
	DefaultMaxHeader  = 16 << 10
	DefaultMaxBatch   = 4096
	maxIDLen          = 128
)

func (l Limits) withDefaults() Limits {
	l.MaxPayload = or(l.MaxPayload, DefaultMaxPayload)
	l.MaxKey = or(l.MaxKey, DefaultMaxKey)
	l.MaxHeader = or(l.MaxHeader, DefaultMaxHeader)
	l.MaxBatch = or(l.MaxBatch, DefaultMaxBatch)
	return l
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// validID reports whether id is 1 to 128 characters of letters, digits and
// ".:_-" — a UUID, a ULID, or a host's own scheme, but nothing that could
// break an audit query or a log line.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idChars[id[i]] { // a table: every collected write's ID is checked
			return false
		}
	}
	return true
}

// idChars marks the bytes validID allows.
var idChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
	}
	return t
}()

// validate checks what a write must carry at any datacenter. Fields assigned
// by Write (ID, Version) are checked only when stamped is true.
func (l Limits) validate(r *Request, stamped bool) error {
	switch {
	case r == nil:
		return ErrNilRequest
	case r.Key == "":
		return ErrEmptyKey
	case len(r.Key) > l.MaxKey:
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(r.Key), l.MaxKey)
	case len(r.Payload) > l.MaxPayload:
		return fmt.Errorf("%w: payload of %d bytes, limit %d", ErrTooLarge, len(r.Payload), l.MaxPayload)
	case r.ID != "" && !validID(r.ID), stamped && r.ID == "":
		return fmt.Errorf("%w: %q", ErrInvalidID, r.ID)
	case stamped && r.Version == 0:
		return ErrNoVersion
	}
	if r.Header != nil {
		n := 0
		for k, v := range r.Header {
			n += len(k) + len(v)
		}
		if n > l.MaxHeader {
			return fmt.Errorf("%w: header of %d bytes, limit %d", ErrTooLarge, n, l.MaxHeader)
		}
	}
	return nil
}

// resultOf returns the error of request i of a batch whose delivery returned
// err: nil on success, the request's own error on partial failure, and err
// itself when the whole batch failed.
func resultOf(err error, i int) error {
	if err == nil { // the common case, without errors.As's allocation
		return nil
	}
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) > i {
		return be.Errs[i]
	}
	return err
}
