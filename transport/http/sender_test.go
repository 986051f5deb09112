package http_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

// newSender returns a sender from unicom unless cfg says otherwise.
func newSender(t *testing.T, cfg dchttp.SenderConfig) *dchttp.Sender {
	t.Helper()
	wiretest.FromUnicom(&cfg.From, &cfg.Secret)
	s, err := dchttp.NewSender(cfg)
	return wiretest.Closing(t, s, err)
}

func TestSenderTLS(t *testing.T) {
	certs := wiretest.NewTLS(t)
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	srv := httptest.NewUnstartedServer(dchttp.NewHandler(recv.Collector(), dchttp.HandlerConfig{Secrets: wiretest.Secrets()}))
	srv.TLS = certs.Server
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatal(srv.URL)
	}

	reqs, _ := batch(t, 5)
	s := newSender(t, dchttp.SenderConfig{URL: srv.URL, To: "telecom", TLS: certs.Client, Compress: true})
	if err := s.Send(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	// A pipe's hand-written requests over TLS, Dcsync-To and
	// Content-Encoding included (the stamp binds both).
	reqs, _ = batch(t, 5)
	if err := s.Pipe().Begin(context.Background(), reqs)(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]*dchttp.SenderConfig{
		"no client certificate":     {URL: srv.URL, TLS: certs.ClientNoCert},
		"certificate of a stranger": {URL: srv.URL, TLS: certs.Stranger},
		"plaintext":                 {URL: strings.Replace(srv.URL, "https:", "http:", 1)},
		"server not trusted":        {URL: srv.URL},
	} {
		reqs, _ := batch(t, 1)
		if err := newSender(t, *tc).Send(context.Background(), reqs); err == nil {
			t.Errorf("%s: sent", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if n := store.Count(); n != 10 {
		t.Fatalf("%d applied, want 10", n)
	}
}

// A refused batch fails for good; a forged origin says so.
func TestSenderErrors(t *testing.T) {
	wiretest.TestSenderErrors(t, transport{}, wiretest.SenderErrors{
		Closed:       dchttp.ErrClosed,
		ForgedOrigin: func(err error) bool { return errors.Is(err, dcsync.ErrForgedOrigin) },
	})
}

// What a proxy or a dead peer answers: a client error is permanent, the
// rest retryable, and the error names the status.
func TestSenderProxyErrors(t *testing.T) {
	for status, permanent := range map[int]bool{400: true, 401: true, 413: true, 404: false, 502: false, 503: false} {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "<html>proxy says no</html>", status)
		}))
		reqs, _ := batch(t, 1)
		err := newSender(t, dchttp.SenderConfig{URL: proxy.URL}).Send(context.Background(), reqs)
		if err == nil || dcsync.IsPermanent(err) != permanent || !strings.Contains(err.Error(), fmt.Sprint(status)) {
			t.Errorf("proxy %d: %v, want permanent=%v", status, err, permanent)
		}
		proxy.Close()
	}
}

// A batch over the peer's limits is split, sent or begun on a pipe,
// compressed or not; the results of the parts are merged back in order.
func TestSenderSplits(t *testing.T) {
	for _, compress := range []bool{false, true} {
		for _, pipe := range []bool{false, true} {
			t.Run(fmt.Sprintf("compress=%v,pipe=%v", compress, pipe), func(t *testing.T) {
				p := newPeer(t, dchttp.HandlerConfig{MaxBatch: 10, MaxBody: 4096})
				s := newSender(t, dchttp.SenderConfig{URL: p.srv.URL, MaxBatch: 10, MaxBody: 4096, Compress: compress})
				send := s.Send
				if pipe {
					send = func(ctx context.Context, reqs []*dcsync.Request) error { return s.Pipe().Begin(ctx, reqs)() }
				}
				reqs, _ := batch(t, 35)
				for i, r := range reqs {
					if i%2 == 0 {
						r.Payload = make([]byte, 1000) // four to a body
					}
				}
				reqs[22].Key = ""
				var be *dcsync.BatchError
				if err := send(context.Background(), reqs); !errors.As(err, &be) || len(be.Errs) != 35 {
					t.Fatalf("%v", err)
				}
				for i, err := range be.Errs {
					if (i == 22) != (err != nil) {
						t.Errorf("request %d: %v", i, err)
					}
				}
				if n := p.store.Count(); n != 34 {
					t.Fatalf("%d applied, want 34", n)
				}
			})
		}
	}
}

func TestSenderConfig(t *testing.T) {
	for _, cfg := range []dchttp.SenderConfig{
		{URL: "ftp://x", From: "unicom", Secret: wiretest.Secret},
		{URL: "http://", From: "unicom", Secret: wiretest.Secret},
		{URL: "http://x", Secret: wiretest.Secret},
		{URL: "http://x", From: "unicom", Secret: []byte("short")},
	} {
		if _, err := dchttp.NewSender(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// A pipe writes its requests by hand, with printable ASCII only: for other
// names or hosts there is no pipe, and the Syncer sends batches one by one.
func TestNoPipeForNonASCII(t *testing.T) {
	for _, cfg := range []dchttp.SenderConfig{
		{URL: "http://x", From: "ünicom", Secret: wiretest.Secret},
		{URL: "http://x", From: "unicom", To: "tele\r\ncom", Secret: wiretest.Secret},
		{URL: "http://bücher.example", From: "unicom", Secret: wiretest.Secret},
	} {
		s, err := dchttp.NewSender(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.Pipe() != nil {
			t.Errorf("%+v: a pipe", cfg)
		}
		s.Close()
	}
	s := newSender(t, dchttp.SenderConfig{URL: "http://x", To: "telecom"})
	if s.Pipe() == nil {
		t.Error("no pipe for ASCII names")
	}
}

// Sequential batches travel on one kept-alive connection.
func TestSenderReusesConnections(t *testing.T) {
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	srv := httptest.NewUnstartedServer(dchttp.NewHandler(recv.Collector(), dchttp.HandlerConfig{Secrets: wiretest.Secrets()}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := newSender(t, dchttp.SenderConfig{URL: srv.URL})
	for range 50 {
		reqs, _ := batch(t, 10)
		if err := s.Send(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 50 batches, want 1", n)
	}
	if n := store.Count(); n != 500 {
		t.Fatalf("%d applied", n)
	}
}
