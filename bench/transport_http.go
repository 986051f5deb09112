package main

import (
	"context"
	"net/http"

	"github.com/dcsync/dcsync"
	dcsynchttp "github.com/dcsync/dcsync/transport/http"
)

// httpWiring joins the Syncers with transport/http: each serves its
// Collector on a loopback net/http server, and posts to the other's.
type httpWiring struct{ listeners }

func (w *httpWiring) config(_ context.Context, e *env, cfg dcsync.Config, other string) (dcsync.Config, error) {
	l, err := w.get(e, other)
	if err != nil {
		return cfg, err
	}
	w.other[cfg.DC] = other
	addr, err := e.peerAddr(l.Addr().String())
	if err != nil {
		return cfg, err
	}
	s, err := dcsynchttp.NewSender(dcsynchttp.SenderConfig{URL: "http://" + addr + "/dcsync",
		From: cfg.DC, Secret: secret})
	if err != nil {
		return cfg, err
	}
	cfg.Peers = map[string]dcsync.Sender{other: s}
	return cfg, nil
}

func (w *httpWiring) start(_ context.Context, e *env, s *dcsync.Syncer) error {
	l, err := w.get(e, s.DC())
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/dcsync", dcsynchttp.NewHandler(s.Collector(),
		dcsynchttp.HandlerConfig{Secrets: map[string][]byte{w.other[s.DC()]: secret}}))
	srv := &http.Server{Handler: mux}
	go srv.Serve(l) // returns when the phase ends and closes it
	e.onClose(func() { srv.Close() })
	return nil
}

func (w *httpWiring) stop() {}
