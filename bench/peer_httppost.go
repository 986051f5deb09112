package main

import (
	"context"
	"io"
	"net"
	"net/http"
)

// httpPostTarget is the hand-rolled baseline: one HTTP POST per write,
// net/http client to a net/http server that applies the body. Its client
// keeps a connection per writer alive, which a user would have to know to
// configure (the default keeps two).
var httpPostTarget = target{name: "handrolled/http-post", kind: kindPeer, transport: "http", needs: none,
	start: startHTTPPost}

type httpPostSystem struct {
	url    string
	client *http.Client
}

func startHTTPPost(_ context.Context, e *env) (system, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.apply(body)
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(e.wire.listener(l)) // returns when the phase ends and closes it
	e.onClose(func() { srv.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: e.cfg.Writers}
	e.onClose(tr.CloseIdleConnections)
	return &httpPostSystem{url: "http://" + l.Addr().String() + "/write", client: &http.Client{Transport: tr}}, nil
}

func (h *httpPostSystem) write(ctx context.Context, _ int, payload []byte) error {
	return post(ctx, h.client, h.url, "application/octet-stream", payload)
}

func (h *httpPostSystem) close() error { return nil }
