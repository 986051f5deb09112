package http_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/dcsync/dcsync"
	dcsynchttp "github.com/dcsync/dcsync/transport/http"
)

func TestSmoke(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	var applied atomic.Int64
	b, err := dcsync.New(dcsync.Config{DC: "telecom", Peers: map[string]dcsync.Sender{"unicom": nopSender{}},
		Processor: dcsync.ProcessorFunc(func(ctx context.Context, r *dcsync.Request) error { applied.Add(1); return nil })})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dcsynchttp.NewHandler(b.Collector(), dcsynchttp.HandlerConfig{Secrets: map[string][]byte{"unicom": secret}}))
	defer srv.Close()
	snd, err := dcsynchttp.NewSender(dcsynchttp.SenderConfig{URL: srv.URL, From: "unicom", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	a, err := dcsync.New(dcsync.Config{DC: "unicom", Peers: map[string]dcsync.Sender{"telecom": snd},
		Processor: dcsync.ProcessorFunc(func(ctx context.Context, r *dcsync.Request) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if err := a.Write(context.Background(), &dcsync.Request{Key: "k", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	a.Flush(context.Background())
	t.Log(applied.Load(), a.Stats(), b.Stats())
}

type nopSender struct{}

func (nopSender) Send(context.Context, []*dcsync.Request) error { return nil }
func (nopSender) Close() error                                   { return nil }
