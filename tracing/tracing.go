// Package tracing follows dcsync writes with OpenTelemetry traces, across
// datacenters.
//
// Tracer is a dcsync.Observer. Write runs under a "dcsync.process" span,
// a child of the span in Write's context, and the W3C trace context of that
// span (traceparent, tracestate) is injected into Request.Header, which
// travels with the write. Every peer then continues the trace:
//
//	A  dcsync.process ─ dcsync.reship (batch to B)
//	B  └─ dcsync.collect (batch from A) ─ dcsync.apply
//
// Batches are traced once per hop, not once per write: a batch span
// ("dcsync.reship", "dcsync.collect", "dcsync.apply") has as parent the span
// of its context or, lacking one, the trace context of its first traced
// write, and a span link to the trace context of every write it carries
// (attribute dcsync.request_id). A reconciler's repair is a "dcsync.reship"
// span with dcsync.repair=true under the reconciler's context, linked to
// the original traces.
//
// With no TracerProvider installed, otel's global no-op provider makes
// every span free of recording and nothing is injected: the core works
// unchanged.
//
//	s, err := dcsync.New(dcsync.Config{DC: "eu", Observer: tracing.New("eu", tracing.Options{}), ...})
//
// When combined with other Observers by dcsync.Observers, put the Tracer
// first or last, so that the span its Done calls find in their context is
// its own; the monitor and metrics/prom observers start no spans.
package tracing

import (
	"cmp"
	"context"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/monitor"
)

// Options configures a Tracer. The zero value uses otel's globals.
type Options struct {
	// Provider makes the tracer; default otel.GetTracerProvider(), read
	// at New.
	Provider trace.TracerProvider
	// Propagator writes and reads the trace context in Request.Header;
	// default W3C trace context and baggage.
	Propagator propagation.TextMapPropagator
}

// ScopeName is the instrumentation scope of the Tracer's spans.
const ScopeName = "github.com/dcsync/dcsync/tracing"

// Attribute keys of the spans.
const (
	AttrRequestID = attribute.Key("dcsync.request_id")
	AttrDC        = attribute.Key("dcsync.dc")
	AttrPeer      = attribute.Key("dcsync.peer")
	AttrOrigin    = attribute.Key("dcsync.origin")
	AttrBatchSize = attribute.Key("dcsync.batch.size")
	AttrRepair    = attribute.Key("dcsync.repair")
	AttrFailed    = attribute.Key("dcsync.failed")
	AttrReason    = attribute.Key("dcsync.reason")
)

// Tracer traces one datacenter's stages. Use one per Syncer (and its
// Reconciler); it is safe for concurrent use.
type Tracer struct {
	dc     string
	fixed  trace.Tracer // from Options.Provider; nil to follow otel's global
	global atomic.Pointer[globalTracer]
	prop   propagation.TextMapPropagator
	dcAttr attribute.KeyValue
}

type globalTracer struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
}

// unset is otel's global TracerProvider before any is installed, which
// makes spans that record nothing; nil when one was installed before this
// package was initialised.
var unset = func() trace.TracerProvider {
	p := otel.GetTracerProvider()
	if reflect.TypeOf(p).String() == "*global.tracerProvider" {
		return p
	}
	return nil
}()

// New returns the Tracer of datacenter dc. A no-op provider, or otel's
// global one while no provider is installed, makes every call return at
// once: the write path pays a comparison.
func New(dc string, opts Options) *Tracer {
	if opts.Propagator == nil {
		opts.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	t := &Tracer{dc: dc, prop: opts.Propagator, dcAttr: AttrDC.String(dc)}
	if opts.Provider != nil {
		t.fixed = opts.Provider.Tracer(ScopeName)
		if _, ok := opts.Provider.(noop.TracerProvider); ok {
			t.fixed = nil
			t.global.Store(&globalTracer{}) // never used: off for good
		}
	}
	return t
}

// tracer returns the tracer to use, or nil when spans would record nothing.
func (t *Tracer) tracer() trace.Tracer {
	if t.fixed != nil {
		return t.fixed
	}
	g := t.global.Load()
	if g != nil && g.provider == nil {
		return nil // a no-op provider
	}
	p := otel.GetTracerProvider()
	if p == unset {
		return nil
	}
	if g == nil || g.provider != p {
		g = &globalTracer{provider: p, tracer: p.Tracer(ScopeName)}
		t.global.Store(g)
	}
	return g.tracer
}

var _ dcsync.Observer = (*Tracer)(nil)

// WriteStart starts the process span and injects its context into
// req.Header.
func (t *Tracer) WriteStart(ctx context.Context, req *dcsync.Request) context.Context {
	tracer := t.tracer()
	if tracer == nil {
		return ctx
	}
	ctx, span := tracer.Start(ctx, "dcsync.process", producer...)
	if span.SpanContext().IsValid() {
		if span.IsRecording() {
			span.SetAttributes(t.dcAttr, AttrRequestID.String(req.ID))
		}
		if req.Header == nil {
			req.Header = make(map[string]string, 2)
		}
		t.prop.Inject(ctx, propagation.MapCarrier(req.Header))
	}
	return ctx
}

// noSpan is returned by start when nothing records.
var noSpan trace.Span = noop.Span{}

// Span kinds, made once: options built at every call would cost the write
// path allocations even with the no-op provider. Attributes are set once
// a span is known to record.
var (
	producer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
	consumer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	internal = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
)

// WriteDone ends the process span.
func (t *Tracer) WriteDone(ctx context.Context, _ *dcsync.Request, err error) {
	end(trace.SpanFromContext(ctx), err)
}

func end(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(AttrReason.String(monitor.Reason(err)))
	}
	span.End()
}

// start starts a batch span named name over reqs, under ctx's span or else
// (when own) the first traced request's, linked to every request's trace.
// The span records attributes only when it is recording.
func (t *Tracer) start(ctx context.Context, name string, opts []trace.SpanStartOption, own bool,
	reqs []*dcsync.Request) (context.Context, trace.Span) {
	tracer := t.tracer()
	if tracer == nil {
		return ctx, noSpan
	}
	if name == "dcsync.collect" {
		// The transport's own span, if any, is not the write's: the
		// origin's is the parent.
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	}
	if own && !trace.SpanContextFromContext(ctx).IsValid() {
		for _, req := range reqs {
			if req.Header["traceparent"] != "" {
				// The remote parent, keeping ctx's values and deadline.
				sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.MapCarrier(req.Header)))
				if sc.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
				}
				break
			}
		}
	}
	ctx, span := tracer.Start(ctx, name, opts...)
	if !span.IsRecording() {
		return ctx, span
	}
	span.SetAttributes(t.dcAttr, AttrBatchSize.Int(len(reqs)))
	if len(reqs) == 1 {
		span.SetAttributes(AttrRequestID.String(reqs[0].ID))
	}
	for _, req := range reqs {
		if req.Header["traceparent"] == "" {
			continue
		}
		sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.MapCarrier(req.Header)))
		if sc.IsValid() {
			span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{AttrRequestID.String(req.ID)}})
		}
	}
	return ctx, span
}

// endBatch ends the span of ctx, with how many of errs failed.
func endBatch(ctx context.Context, errs []error) {
	span := trace.SpanFromContext(ctx)
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if span.IsRecording() {
		span.SetAttributes(AttrFailed.Int(failed))
	}
	end(span, first)
}

// SendStart starts a reship span.
func (t *Tracer) SendStart(ctx context.Context, b dcsync.Send) context.Context {
	ctx, span := t.start(ctx, "dcsync.reship", producer, !b.Repair, b.Reqs)
	if span.IsRecording() {
		span.SetAttributes(AttrPeer.String(b.Peer), AttrRepair.Bool(b.Repair))
	}
	return ctx
}

// SendDone ends the reship span.
func (t *Tracer) SendDone(ctx context.Context, _ dcsync.Send, errs []error) { endBatch(ctx, errs) }

// CollectStart starts a collect span, a child of the origin's span.
func (t *Tracer) CollectStart(ctx context.Context, from string, reqs []*dcsync.Request) context.Context {
	ctx, span := t.start(ctx, "dcsync.collect", consumer, true, reqs)
	if span.IsRecording() {
		span.SetAttributes(AttrPeer.String(from))
	}
	return ctx
}

// CollectDone ends the collect span.
func (t *Tracer) CollectDone(ctx context.Context, _ string, _ []*dcsync.Request, res dcsync.CollectResult) {
	if res.Err != nil {
		end(trace.SpanFromContext(ctx), res.Err)
		return
	}
	endBatch(ctx, res.Errs)
}

// ApplyStart starts an apply span.
func (t *Tracer) ApplyStart(ctx context.Context, reqs []*dcsync.Request) context.Context {
	ctx, span := t.start(ctx, "dcsync.apply", internal, true, reqs)
	if span.IsRecording() && len(reqs) > 0 {
		span.SetAttributes(AttrOrigin.String(reqs[0].Origin))
	}
	return ctx
}

// ApplyDone ends the apply span.
func (t *Tracer) ApplyDone(ctx context.Context, _ []*dcsync.Request, errs []error) {
	endBatch(ctx, errs)
}

// ReconcileDone adds an event to the span of ctx, if any, with the pass's
// report.
func (t *Tracer) ReconcileDone(ctx context.Context, _ string, rep dcsync.Report, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("dcsync.reconcile", trace.WithAttributes(t.dcAttr, attribute.Int("dcsync.scanned", rep.Scanned),
		attribute.Int("dcsync.repaired", rep.Repaired), attribute.Int("dcsync.failing", rep.Failing)))
	if err != nil {
		span.RecordError(err)
	}
}
