package tracing_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/tracing"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

var secret = []byte("shared by east and west, 32 bytes+")

// link connects datacenter "west" to "east"'s collector over a transport
// and returns west's Sender to east.
type link func(t *testing.T, east dcsync.Collector) dcsync.Sender

func overHTTP(t *testing.T, east dcsync.Collector) dcsync.Sender {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: dchttp.NewHandler(east, dchttp.HandlerConfig{
		Secrets: map[string][]byte{"west": secret}}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s, err := dchttp.NewSender(dchttp.SenderConfig{URL: "http://" + ln.Addr().String() + "/", From: "west", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func overGRPC(t *testing.T, east dcsync.Collector) dcsync.Sender {
	cfg := dcgrpc.ServerConfig{Secrets: map[string][]byte{"west": secret}}
	srv := grpc.NewServer(dcgrpc.ServerOptions(cfg)...)
	if err := dcgrpc.Register(srv, east, cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	s, err := dcgrpc.NewSender(dcgrpc.SenderConfig{Target: ln.Addr().String(), From: "west", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTraceAcrossDatacenters(t *testing.T) {
	for name, l := range map[string]link{"http": overHTTP, "grpc": overGRPC} {
		t.Run(name, func(t *testing.T) { testTrace(t, l) })
	}
}

func testTrace(t *testing.T, l link) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	nop := dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })

	// Each datacenter has its own Tracer; they share the exporter only
	// because this test runs both in one process.
	unused, err := dchttp.NewSender(dchttp.SenderConfig{URL: "http://127.0.0.1:1/", From: "east", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	east, err := dcsync.New(dcsync.Config{DC: "east", Peers: map[string]dcsync.Sender{"west": unused}, Processor: nop,
		Observer: tracing.New("east", tracing.Options{Provider: tp})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { east.Close() })
	west, err := dcsync.New(dcsync.Config{DC: "west", Peers: map[string]dcsync.Sender{"east": l(t, east.Collector())},
		Processor: nop, Observer: tracing.New("west", tracing.Options{Provider: tp})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { west.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx, root := tp.Tracer("test").Start(ctx, "handle request")
	req := &dcsync.Request{Key: "user:1", Op: "set", Payload: []byte("Ada")}
	if err := west.Write(ctx, req, dcsync.WaitAll()); err != nil {
		t.Fatal(err)
	}
	root.End()
	if req.Header["traceparent"] == "" {
		t.Fatalf("no traceparent injected: %v", req.Header)
	}

	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		spans[s.Name] = s
	}
	tid := root.SpanContext().TraceID()
	for _, name := range []string{"dcsync.process", "dcsync.reship", "dcsync.collect", "dcsync.apply"} {
		s, ok := spans[name]
		switch {
		case !ok:
			t.Fatalf("no %s span; have %v", name, spans)
		case s.SpanContext.TraceID() != tid:
			t.Errorf("%s is in trace %s, want %s", name, s.SpanContext.TraceID(), tid)
		}
	}
	parent := func(child, parent string) {
		t.Helper()
		if got, want := spans[child].Parent.SpanID(), spans[parent].SpanContext.SpanID(); got != want {
			t.Errorf("%s's parent is %s, want %s's %s", child, got, parent, want)
		}
	}
	parent("dcsync.process", "handle request")
	parent("dcsync.reship", "dcsync.process")
	parent("dcsync.collect", "dcsync.process") // across the datacenters
	parent("dcsync.apply", "dcsync.collect")
	if !spans["dcsync.collect"].Parent.IsRemote() {
		t.Error("the collect span's parent is not remote")
	}
	// The batch spans link to the writes they carry.
	for _, name := range []string{"dcsync.reship", "dcsync.collect", "dcsync.apply"} {
		links := spans[name].Links
		if len(links) != 1 || links[0].SpanContext.SpanID() != spans["dcsync.process"].SpanContext.SpanID() {
			t.Errorf("%s links %v, want the process span", name, links)
		}
	}
	if got := attr(spans["dcsync.collect"], tracing.AttrDC); got != "east" {
		t.Errorf("collect span's dc %q", got)
	}
	if got := attr(spans["dcsync.process"], tracing.AttrRequestID); got != req.ID {
		t.Errorf("process span's request ID %q, want %q", got, req.ID)
	}
}

func attr(s tracetest.SpanStub, k attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == k {
			return a.Value.String()
		}
	}
	return ""
}

// Without a provider, nothing is injected and writes replicate as before.
func TestNoProvider(t *testing.T) {
	tr := tracing.New("west", tracing.Options{})
	req := &dcsync.Request{ID: "x", Key: "k"}
	ctx := tr.WriteStart(context.Background(), req)
	if req.Header != nil {
		t.Errorf("header %v without a provider", req.Header)
	}
	if trace.SpanFromContext(ctx).IsRecording() {
		t.Error("recording span without a provider")
	}
	tr.WriteDone(ctx, req, nil)
	ctx = tr.SendStart(context.Background(), dcsync.Send{Peer: "east", Reqs: []*dcsync.Request{req}})
	tr.SendDone(ctx, dcsync.Send{}, []error{nil})
}

// A Tracer without a Provider follows otel's global one, once installed.
func TestGlobalProvider(t *testing.T) {
	tr := tracing.New("west", tracing.Options{})
	req := &dcsync.Request{ID: "x", Key: "k"}
	tr.WriteDone(tr.WriteStart(context.Background(), req), req, nil)
	if req.Header != nil {
		t.Fatalf("header %v before a provider is installed", req.Header)
	}
	exp := tracetest.NewInMemoryExporter()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	tr.WriteDone(tr.WriteStart(context.Background(), req), req, nil)
	if req.Header["traceparent"] == "" || len(exp.GetSpans()) != 1 {
		t.Fatalf("header %v, spans %v", req.Header, exp.GetSpans())
	}
}
