package http_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// shortBody is a body that delivers a few bytes of the Content-Length it
// declares, then ends.
type shortBody struct{ n int }

func (b *shortBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	n := min(b.n, len(p))
	clear(p[:n])
	b.n -= n
	return n, nil
}

func (b *shortBody) Close() error { return nil }

// A request that declares a 4 MiB body, sends 300 bytes and a stamp that
// does not verify costs the handler a small constant, not the declared
// length: the body grows with the bytes received. Nothing is applied.
func TestDeclaredLengthNotAllocated(t *testing.T) {
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	h := dchttp.NewHandler(recv.Collector(), dchttp.HandlerConfig{Secrets: wiretest.Secrets()})
	signed := request{body: make([]byte, 300), sign: []byte("something else")}.build(t, "http://x/")
	serve := func() int {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Header = signed.Header.Clone()
		req.ContentLength = 4 << 20
		req.Body = &shortBody{300}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	serve() // the buffer pools warm up
	const n = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if code := serve(); code != 401 {
			t.Fatalf("status %d, want 401", code)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per request declaring 4 MiB", per)
	if per > 128<<10 {
		t.Fatalf("%d bytes allocated per request declaring 4 MiB and sending 300", per)
	}
	if store.Count() != 0 {
		t.Fatal("applied")
	}
	st := recv.Stats()
	if st.RefusedUnauthenticated != n+1 {
		t.Fatalf("stats %+v, want %d unauthenticated refusals", st, n+1)
	}
}

// A client sending its body a byte at a time is cut off after
// BodyTimeout: unauthenticated callers hold a connection for a bounded
// time.
func TestSlowBody(t *testing.T) {
	p := newPeer(t, dchttp.HandlerConfig{BodyTimeout: 200 * time.Millisecond, MaxBody: 64 << 10, MaxPending: 64 << 10})
	_, good := batch(t, 3)
	req := request{body: good}.build(t, p.srv.URL)
	open := func(length int) (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", p.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\n")
		for k, v := range req.Header {
			fmt.Fprintf(conn, "%s: %s\r\n", k, v[0])
		}
		fmt.Fprintf(conn, "Content-Length: %d\r\n\r\n", length)
		return conn, bufio.NewReader(conn)
	}
	// Slow: a byte, then nothing. The handler answers once its deadline
	// passes (generously waited for), without the rest of the body.
	conn, rd := open(len(good))
	_, _ = conn.Write(good[:1])
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("slow body never answered: %v", err)
	}
	code, res := answer(t, resp)
	if code != 400 || !strings.Contains(res.Message, "reading body") {
		t.Fatalf("slow body: %d %q", code, res.Message)
	}
	if n := p.store.Count(); n != 0 {
		t.Fatalf("%d applied", n)
	}
}

// Bodies held open take MaxPending; the next is answered 503 (retried) at
// once, and is served again once they are released.
func TestMaxPending(t *testing.T) {
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	h := dchttp.NewHandler(recv.Collector(), dchttp.HandlerConfig{Secrets: wiretest.Secrets(),
		MaxBody: 64 << 10, MaxPending: 90 << 10})
	_, good := batch(t, 3)
	signed := request{body: good}.build(t, "http://x/")
	post := func(body io.Reader, length int64) int {
		req := httptest.NewRequest(http.MethodPost, "/", body)
		req.Header = signed.Header.Clone()
		req.ContentLength = length
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	pr, pw := io.Pipe()
	held := make(chan int, 1)
	go func() { held <- post(pr, 60<<10) }()
	// Write returns once the handler read it all, so holding 64 KiB.
	if _, err := pw.Write(make([]byte, 40<<10)); err != nil {
		t.Fatal(err)
	}
	if code := post(strings.NewReader(string(good)), int64(len(good))); code != 503 {
		t.Fatalf("past MaxPending: %d, want 503", code)
	}
	_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	if code := <-held; code != 400 {
		t.Fatalf("held body: %d, want 400", code)
	}
	if code := post(strings.NewReader(string(good)), int64(len(good))); code != 200 {
		t.Fatalf("after release: %d, want 200", code)
	}
	if n := store.Count(); n != 3 {
		t.Fatalf("%d applied, want 3", n)
	}
}

// NewServer bounds every phase of a connection.
func TestNewServer(t *testing.T) {
	srv := dchttp.NewServer(":0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 ||
		srv.MaxHeaderBytes <= 0 || srv.ReadTimeout < dchttp.DefaultBodyTimeout || srv.WriteTimeout <= srv.ReadTimeout {
		t.Fatalf("%+v", srv)
	}
}
