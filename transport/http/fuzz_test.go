package http_test

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// FuzzHandler posts arbitrary bodies, correctly signed so that they reach
// the decoder, as protobuf, gzipped protobuf and JSON. The handler must
// answer 200, 400 or 413 with a Results, and apply nothing unless it
// answers 200. The seed corpus runs with every go test.
func FuzzHandler(f *testing.F) {
	_, good := batch(f, 3)
	f.Add(good, uint8(0))
	f.Add(good[:len(good)/2], uint8(0))
	zipped, _ := wire.Encode(nil, nil, wire.Proto, wire.Encoding_ENCODING_GZIP)
	f.Add(zipped, uint8(1))
	f.Add([]byte(`{"requests":[{"id":"a","origin":"unicom","key":"k","version":"1"}]}`), uint8(2))
	f.Add([]byte(`{"requests":[{"id":"a","origin":"unicom","key":"k","version":"x"}]}`), uint8(2))
	f.Add([]byte("\x0a\x03\x0a\x01\xff"), uint8(0))

	store := wiretest.NewStore()
	recv := wiretest.Receiver(f, store, nil)
	h := dchttp.NewHandler(recv.Collector(), dchttp.HandlerConfig{Secrets: wiretest.Secrets(),
		MaxBody: 64 << 10, MaxBatch: 64, ReplayCache: 1 << 10})
	signer, err := auth.NewSigner("unicom", wiretest.Secret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		switch kind % 3 {
		case 0:
			req.Header.Set("Content-Type", dchttp.ContentTypeProto)
		case 1:
			req.Header.Set("Content-Type", dchttp.ContentTypeProto)
			req.Header.Set("Content-Encoding", "gzip")
		case 2:
			req.Header.Set("Content-Type", dchttp.ContentTypeJSON)
		}
		signer.Encoding = ""
		if kind%3 == 1 {
			signer.Encoding = "gzip"
		}
		st := signer.Sign(body)
		req.Header.Set(dchttp.HeaderFrom, st.From)
		req.Header.Set(dchttp.HeaderTimestamp, itoa(st.Timestamp))
		req.Header.Set(dchttp.HeaderNonce, hexs(st.Nonce[:]))
		req.Header.Set(dchttp.HeaderSignature, hexs(st.Signature[:]))
		before := store.Count()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 400, 413, 403:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		f := wire.Proto
		if kind%3 == 2 {
			f = wire.JSON
		}
		var res wire.Results
		if err := wire.UnmarshalResults(w.Body.Bytes(), f, &res); err != nil {
			t.Fatalf("status %d, unreadable answer: %v", w.Code, err)
		}
		if w.Code != 200 && store.Count() != before {
			t.Fatalf("status %d but %d applied", w.Code, store.Count()-before)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func hexs(b []byte) string { return hex.EncodeToString(b) }

// FuzzHeaders posts a valid body under arbitrary stamp, Content-Type and
// Content-Encoding headers, as any caller may: the handler answers a
// refusal it can read back, applies nothing, and never panics. The seed
// corpus runs with every go test.
func FuzzHeaders(f *testing.F) {
	nonce, sig := strings.Repeat("ab", 16), strings.Repeat("cd", 32)
	f.Add("unicom", "1800000000000000000", nonce, sig, "", dchttp.ContentTypeProto, "")
	f.Add("unicom", "-9223372036854775808", nonce, sig, "telecom", "application/json; charset=utf-8", "gzip")
	f.Add(strings.Repeat("u", 300), "x", "zz", "", strings.Repeat("t", 200), "text/plain;;=", "br")
	f.Add("unicom", "+1", nonce+"00", sig[:62], "\x00", "application/x-protobuf; a=\"", "identity")
	store := wiretest.NewStore()
	recv := wiretest.Receiver(f, store, nil)
	h := dchttp.NewHandler(recv.Collector(), dchttp.HandlerConfig{Secrets: wiretest.Secrets(), ReplayCache: 1 << 10})
	_, good := batch(f, 2)
	f.Fuzz(func(t *testing.T, from, ts, nonce, sig, to, ctype, cenc string) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(good))
		for k, v := range map[string]string{dchttp.HeaderFrom: from, dchttp.HeaderTimestamp: ts,
			dchttp.HeaderNonce: nonce, dchttp.HeaderSignature: sig, dchttp.HeaderTo: to,
			"Content-Type": ctype, "Content-Encoding": cenc} {
			req.Header[k] = []string{v}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code < 400 || w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		f := wire.Proto
		if fm, ok := dchttp.FormatOf(ctype); ok {
			f = fm
		}
		var res wire.Results
		if err := wire.UnmarshalResults(w.Body.Bytes(), f, &res); err != nil || res.Code == wire.Code_CODE_OK {
			t.Fatalf("status %d, answer %v %v", w.Code, &res, err)
		}
		if store.Count() != 0 {
			t.Fatal("applied")
		}
	})
}
