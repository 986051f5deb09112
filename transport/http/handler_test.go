package http_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// peer is a receiving datacenter behind an httptest server.
type peer struct {
	store *wiretest.Store
	srv   *httptest.Server
}

func newPeer(t *testing.T, cfg dchttp.HandlerConfig) *peer {
	t.Helper()
	p := &peer{store: wiretest.NewStore()}
	recv := wiretest.Receiver(t, p.store, nil)
	if cfg.Secrets == nil {
		cfg.Secrets = wiretest.Secrets()
	}
	p.srv = httptest.NewServer(dchttp.NewHandler(recv.Collector(), cfg))
	t.Cleanup(p.srv.Close)
	return p
}

// request is a batch to post by hand.
type request struct {
	from, to, contentType, encoding string
	secret                          []byte
	ts                              time.Time
	nonce                           string
	body                            []byte
	sign                            []byte // what is signed, when not body
}

// build builds the HTTP request, signing as the package documentation
// tells a curl user to: HMAC-SHA256 over from, to, timestamp, nonce,
// encoding, body.
func (r request) build(t *testing.T, url string) *http.Request {
	t.Helper()
	if r.from == "" {
		r.from = "unicom"
	}
	if r.secret == nil {
		r.secret = wiretest.Secret
	}
	if r.ts.IsZero() {
		r.ts = time.Now()
	}
	if r.nonce == "" {
		n := make([]byte, 16)
		_, _ = rand.Read(n)
		r.nonce = hex.EncodeToString(n)
	}
	if r.contentType == "" {
		r.contentType = dchttp.ContentTypeProto
	}
	if r.sign == nil {
		r.sign = r.body
	}
	ts := strconv.FormatInt(r.ts.UnixNano(), 10)
	mac := hmac.New(sha256.New, r.secret)
	fmt.Fprintf(mac, "dcsync-v2\n%s\n%s\n%s\n%s\n%s\n", r.from, r.to, ts, r.nonce, r.encoding)
	mac.Write(r.sign)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", r.contentType)
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	req.Header.Set(dchttp.HeaderFrom, r.from)
	if r.to != "" {
		req.Header.Set(dchttp.HeaderTo, r.to)
	}
	req.Header.Set(dchttp.HeaderTimestamp, ts)
	req.Header.Set(dchttp.HeaderNonce, r.nonce)
	req.Header.Set(dchttp.HeaderSignature, hex.EncodeToString(mac.Sum(nil)))
	return req
}

// do sends req and decodes the Results of the answer.
func do(t *testing.T, req *http.Request) (int, *wire.Results) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return answer(t, resp)
}

func answer(t *testing.T, resp *http.Response) (int, *wire.Results) {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := wire.Proto
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		f = wire.JSON
	}
	var res wire.Results
	if err := wire.UnmarshalResults(raw, f, &res); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, &res
}

// batch returns n valid writes from unicom, serialized.
func batch(t testing.TB, n int) ([]*dcsync.Request, []byte) { return wiretest.Batch(t, n) }

func TestHandlerAccepts(t *testing.T) {
	p := newPeer(t, dchttp.HandlerConfig{})
	_, body := batch(t, 3)
	if code, res := do(t, request{body: body}.build(t, p.srv.URL)); code != 200 || res.Code != wire.Code_CODE_OK {
		t.Fatalf("%d %v", code, res)
	}
	_, body = batch(t, 2)
	if code, res := do(t, request{body: wiretest.Gzip(body), encoding: "gzip"}.build(t, p.srv.URL)); code != 200 {
		t.Fatalf("gzip: %d %v", code, res)
	}
	// JSON, as the package documentation shows for curl.
	js := fmt.Sprintf(`{"requests":[{"id":"json-1","origin":"unicom","key":"k","op":"set","payload":"aGk=","version":"%d"}]}`,
		uint64(time.Now().UnixMilli())<<16)
	code, res := do(t, request{body: []byte(js), to: "telecom", contentType: "application/json"}.build(t, p.srv.URL))
	if code != 200 || res.Code != wire.Code_CODE_OK {
		t.Fatalf("JSON: %d %v", code, res)
	}
	if n := p.store.Count(); n != 6 {
		t.Fatalf("%d applied, want 6", n)
	}
	resp, err := http.Get(p.srv.URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Every refusal answers the right status with a message saying why, and
// applies nothing.
func TestHandlerRefuses(t *testing.T) {
	bad := wiretest.NewRefusals(t)
	p := newPeer(t, dchttp.HandlerConfig{MaxBody: 64 << 10, MaxBatch: 10, MaxSkew: time.Minute, Logger: bad.Logger()})
	good := bad.Good
	replayed := request{body: good}.build(t, p.srv.URL)
	replayed2 := replayed.Clone(context.Background())
	replayed2.Body = io.NopCloser(bytes.NewReader(good))
	if code, _ := do(t, replayed); code != 200 {
		t.Fatalf("first send of the replayed batch: %d", code)
	}
	before := p.store.Count()

	for _, c := range []struct {
		name   string
		req    *http.Request
		status int
		says   string
	}{
		{"garbage", request{body: []byte("this is not protobuf")}.build(t, p.srv.URL), 400, "malformed"},
		{"truncated, signed whole", request{body: good[:len(good)-4], sign: good}.build(t, p.srv.URL), 401, "signature"},
		{"truncated, signed as sent", request{body: good[:len(good)-4]}.build(t, p.srv.URL), 400, "malformed"},
		{"bad JSON", request{body: []byte(`{"requests":[{`), contentType: "application/json"}.build(t, p.srv.URL), 400, "malformed"},
		{"over MaxBody", request{body: make([]byte, 65<<10)}.build(t, p.srv.URL), 413, "limit"},
		{"over MaxBatch", request{body: bad.Eleven}.build(t, p.srv.URL), 413, "11 requests, limit 10"},
		{"gzip bomb", request{body: bad.Bomb, encoding: "gzip"}.build(t, p.srv.URL), 413, "decompresses"},
		{"unknown datacenter", request{from: "mobile", body: good}.build(t, p.srv.URL), 401, `"mobile"`},
		{"wrong secret", request{secret: []byte("not the secret we share at all"), body: good}.build(t, p.srv.URL), 401, "signature"},
		{"stale", request{ts: time.Now().Add(-2 * time.Minute), body: good}.build(t, p.srv.URL), 401, "skew"},
		{"from the future", request{ts: time.Now().Add(2 * time.Minute), body: good}.build(t, p.srv.URL), 401, "skew"},
		{"replay", replayed2, 401, "replay"},
		{"bad nonce", request{nonce: "xyz", body: good}.build(t, p.srv.URL), 401, "Nonce"},
		{"forged origin", request{body: bad.Forged}.build(t, p.srv.URL), 403, "origin"},
		{"content type", request{body: good, contentType: "text/plain"}.build(t, p.srv.URL), 415, "Content-Type"},
		{"content encoding", request{body: good, encoding: "br"}.build(t, p.srv.URL), 415, "Content-Encoding"},
	} {
		code, res := do(t, c.req)
		t.Logf("%s: %d %s", c.name, code, res.Message)
		if code != c.status || !strings.Contains(res.Message, c.says) {
			t.Errorf("%s: %d %q, want %d and a message with %q", c.name, code, res.Message, c.status, c.says)
		}
		if res.Code == wire.Code_CODE_OK {
			t.Errorf("%s: result code OK", c.name)
		}
	}
	missing, _ := http.NewRequest(http.MethodPost, p.srv.URL, bytes.NewReader(good))
	missing.Header.Set("Content-Type", dchttp.ContentTypeProto)
	if code, res := do(t, missing); code != 401 || !strings.Contains(res.Message, dchttp.HeaderFrom) {
		t.Errorf("unsigned: %d %q", code, res.Message)
	}
	put, _ := http.NewRequest(http.MethodPut, p.srv.URL, nil)
	if resp, err := http.DefaultClient.Do(put); err != nil || resp.StatusCode != 405 {
		t.Errorf("PUT: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := p.store.Count(); n != before {
		t.Fatalf("refused batches applied %d writes", n-before)
	}
	bad.CheckLogged(t)
}

// A body cut off by the connection closing, and a body over the limit sent
// without a length, are refused while reading.
func TestHandlerRefusesWhileReading(t *testing.T) {
	p := newPeer(t, dchttp.HandlerConfig{MaxBody: 1 << 10})
	_, good := batch(t, 3)
	raw := func(t *testing.T, req *http.Request, body []byte, contentLength string) (int, *wire.Results) {
		t.Helper()
		conn, err := net.Dial("tcp", p.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\n")
		for k, v := range req.Header {
			fmt.Fprintf(conn, "%s: %s\r\n", k, v[0])
		}
		fmt.Fprintf(conn, "%s\r\n\r\n", contentLength)
		_, _ = conn.Write(body)
		_ = conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return answer(t, resp)
	}
	req := request{body: good}.build(t, p.srv.URL)
	if code, res := raw(t, req, good[:10], fmt.Sprintf("Content-Length: %d", len(good))); code != 400 || !strings.Contains(res.Message, "reading body") {
		t.Errorf("cut off: %d %q", code, res.Message)
	}
	big := make([]byte, 2<<10)
	req = request{body: big}.build(t, p.srv.URL)
	var chunked bytes.Buffer
	fmt.Fprintf(&chunked, "%x\r\n%s\r\n0\r\n\r\n", len(big), big)
	if code, res := raw(t, req, chunked.Bytes(), "Transfer-Encoding: chunked"); code != 413 {
		t.Errorf("chunked over the limit: %d %q", code, res.Message)
	}
	if n := p.store.Count(); n != 0 {
		t.Fatalf("%d applied", n)
	}
}

// One invalid request fails alone; the response says which.
func TestHandlerPartial(t *testing.T) {
	p := newPeer(t, dchttp.HandlerConfig{})
	reqs, _ := batch(t, 3)
	reqs[1].Key = ""
	body, _ := wire.Encode(nil, reqs, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	code, res := do(t, request{body: body}.build(t, p.srv.URL))
	if code != 200 || len(res.Results) != 3 || res.Results[0].Code != wire.Code_CODE_OK ||
		res.Results[1].Code != wire.Code_CODE_INVALID || !strings.Contains(res.Results[1].Message, "empty key") {
		t.Fatalf("%d %v", code, res)
	}
	if n := p.store.Count(); n != 2 {
		t.Fatalf("%d applied, want 2", n)
	}
}

func TestHandlerConfig(t *testing.T) {
	for _, cfg := range []dchttp.HandlerConfig{{}, {Secrets: map[string][]byte{"unicom": []byte("short")}}} {
		if cfg.Validate() == nil {
			t.Errorf("%+v validated", cfg)
		}
	}
	if err := (dchttp.HandlerConfig{Secrets: wiretest.Secrets()}).Validate(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewHandler took an invalid config")
		}
	}()
	dchttp.NewHandler(nil, dchttp.HandlerConfig{})
}

func TestReceiverNamed(t *testing.T) {
	wiretest.TestReceiverNamed(t, func(tb testing.TB, store *wiretest.Store, requireTo bool) string {
		srv := httptest.NewServer(dchttp.NewHandler(wiretest.Receiver(tb, store, nil).Collector(),
			dchttp.HandlerConfig{Secrets: wiretest.Secrets(), RequireTo: requireTo}))
		tb.Cleanup(srv.Close)
		return srv.URL
	}, func(tb testing.TB, url, to string) dcsync.Sender {
		s, err := dchttp.NewSender(dchttp.SenderConfig{URL: url, From: "unicom", To: to, Secret: wiretest.Secret})
		return wiretest.Closing(tb, s, err)
	})
}
