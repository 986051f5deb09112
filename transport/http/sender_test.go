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
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
	dcsynchttp "github.com/dcsync/dcsync/transport/http"
)

func newSender(t *testing.T, cfg dcsynchttp.SenderConfig) *dcsynchttp.Sender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "unicom"
	}
	if cfg.Secret == nil {
		cfg.Secret = wiretest.Secret
	}
	s, err := dcsynchttp.NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSenderTLS(t *testing.T) {
	certs := wiretest.NewTLS(t)
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	srv := httptest.NewUnstartedServer(dcsynchttp.NewHandler(recv.Collector(), dcsynchttp.HandlerConfig{Secrets: wiretest.Secrets()}))
	srv.TLS = certs.Server
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatal(srv.URL)
	}

	reqs, _ := batch(t, 5)
	if err := newSender(t, dcsynchttp.SenderConfig{URL: srv.URL, TLS: certs.Client, Compress: true}).Send(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]*dcsynchttp.SenderConfig{
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
	if n := store.Count(); n != 5 {
		t.Fatalf("%d applied, want 5", n)
	}
}

func TestSenderErrors(t *testing.T) {
	p := newPeer(t, dcsynchttp.HandlerConfig{})
	ctx := context.Background()

	reqs, _ := batch(t, 2)
	err := newSender(t, dcsynchttp.SenderConfig{URL: p.srv.URL, Secret: []byte("a secret telecom does not know")}).Send(ctx, reqs)
	if !errors.Is(err, dcsync.ErrUnauthenticated) || !dcsync.IsPermanent(err) {
		t.Errorf("wrong secret: %v", err)
	}

	s := newSender(t, dcsynchttp.SenderConfig{URL: p.srv.URL})
	reqs, _ = batch(t, 3)
	reqs[1].Key = ""
	var be *dcsync.BatchError
	if err := s.Send(ctx, reqs); !errors.As(err, &be) || be.Errs[0] != nil || be.Errs[2] != nil ||
		!errors.Is(be.Errs[1], dcsync.ErrInvalid) {
		t.Errorf("one invalid request: %v", err)
	}
	reqs, _ = batch(t, 1)
	reqs[0].Origin = "telecom"
	if err := s.Send(ctx, reqs); !errors.Is(err, dcsync.ErrForgedOrigin) {
		t.Errorf("forged origin: %v", err)
	}

	// What a proxy or a dead peer answers.
	for status, permanent := range map[int]bool{400: true, 401: true, 413: true, 404: false, 502: false, 503: false} {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "<html>proxy says no</html>", status)
		}))
		reqs, _ := batch(t, 1)
		err := newSender(t, dcsynchttp.SenderConfig{URL: proxy.URL}).Send(ctx, reqs)
		if err == nil || dcsync.IsPermanent(err) != permanent || !strings.Contains(err.Error(), fmt.Sprint(status)) {
			t.Errorf("proxy %d: %v, want permanent=%v", status, err, permanent)
		}
		proxy.Close()
	}
	ln := wiretest.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	if err := newSender(t, dcsynchttp.SenderConfig{URL: "http://" + addr}).Send(ctx, reqs); err == nil || dcsync.IsPermanent(err) {
		t.Errorf("nobody listening: %v", err)
	}

	// A peer that does not answer in time: the context ends the wait.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := newSender(t, dcsynchttp.SenderConfig{URL: slow.URL}).Send(tctx, reqs); !errors.Is(err, context.DeadlineExceeded) || dcsync.IsPermanent(err) {
		t.Errorf("slow peer: %v", err)
	}
	closed := newSender(t, dcsynchttp.SenderConfig{URL: p.srv.URL})
	_ = closed.Close()
	if err := closed.Send(ctx, reqs); !errors.Is(err, dcsynchttp.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if n := p.store.Count(); n != 2 {
		t.Fatalf("%d applied, want 2", n)
	}
}

// A batch over the peer's limits is split; the results of the parts are
// merged back in order.
func TestSenderSplits(t *testing.T) {
	p := newPeer(t, dcsynchttp.HandlerConfig{MaxBatch: 10, MaxBody: 4096})
	s := newSender(t, dcsynchttp.SenderConfig{URL: p.srv.URL, MaxBatch: 10, MaxBody: 4096})
	reqs, _ := batch(t, 35)
	for i, r := range reqs {
		if i%2 == 0 {
			r.Payload = make([]byte, 1000) // four to a body
		}
	}
	reqs[22].Key = ""
	var be *dcsync.BatchError
	if err := s.Send(context.Background(), reqs); !errors.As(err, &be) || len(be.Errs) != 35 {
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
}

func TestSenderConfig(t *testing.T) {
	for _, cfg := range []dcsynchttp.SenderConfig{
		{URL: "ftp://x", From: "unicom", Secret: wiretest.Secret},
		{URL: "http://", From: "unicom", Secret: wiretest.Secret},
		{URL: "http://x", Secret: wiretest.Secret},
		{URL: "http://x", From: "unicom", Secret: []byte("short")},
	} {
		if _, err := dcsynchttp.NewSender(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// Sequential batches travel on one kept-alive connection.
func TestSenderReusesConnections(t *testing.T) {
	store := wiretest.NewStore()
	recv := wiretest.Receiver(t, store, nil)
	srv := httptest.NewUnstartedServer(dcsynchttp.NewHandler(recv.Collector(), dcsynchttp.HandlerConfig{Secrets: wiretest.Secrets()}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := newSender(t, dcsynchttp.SenderConfig{URL: srv.URL})
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
