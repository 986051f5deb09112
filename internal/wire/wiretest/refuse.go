package wiretest

import (
	"bytes"
	"compress/gzip"
	"log/slog"
	"strings"
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// Refusals are the bodies the refusal tests of both transports send to a
// server limited to MaxBody 64 KiB and MaxBatch 10, and the log that
// server writes its refusals to.
type Refusals struct {
	Good   []byte // three valid writes from unicom
	Eleven []byte // eleven valid writes: over MaxBatch
	Forged []byte // a write sent by unicom whose origin is telecom
	Bomb   []byte // 1 MiB of zeros, gzipped: over MaxBody once inflated
	Log    LogBuffer
}

// NewRefusals returns fresh Refusals.
func NewRefusals(tb testing.TB) *Refusals {
	tb.Helper()
	r := &Refusals{}
	reqs, good := Batch(tb, 3)
	_, r.Eleven = Batch(tb, 11)
	r.Good = good
	forged := []*dcsync.Request{reqs[0].Clone()}
	forged[0].Origin = "telecom"
	var err error
	if r.Forged, err = wire.Encode(nil, forged, wire.Proto, wire.Encoding_ENCODING_IDENTITY); err != nil {
		tb.Fatal(err)
	}
	r.Bomb = Gzip(make([]byte, 1<<20))
	return r
}

// Logger returns the logger for the server, writing to r.Log.
func (r *Refusals) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(&r.Log, nil)) }

// CheckLogged fails tb unless the server logged its refusals with the
// peer's address, and the refusal of the batch from the unknown
// datacenter "mobile" with its name and code.
func (r *Refusals) CheckLogged(tb testing.TB) {
	tb.Helper()
	if l := r.Log.String(); !strings.Contains(l, `msg="dcsync: batch refused" remote=127.0.0.1:`) ||
		!strings.Contains(l, "from=mobile code=CODE_UNKNOWN_PEER") {
		tb.Errorf("refusals not logged:\n%s", l)
	}
}

// Gzip returns b gzipped.
func Gzip(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b) // a bytes.Buffer does not fail
	_ = zw.Close()
	return out.Bytes()
}
