// Package tracing sets up OpenTelemetry tracing: a tracer provider with an
// OTLP/HTTP exporter, a parent-based ratio sampler and the W3C trace
// context propagator. The engine holds a *Tracer only when tracing is
// configured; a nil *Tracer means off, and the request path then does no
// tracing work at all.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	neturl "net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is what tracing needs from the config file.
type Config struct {
	Endpoint    string
	SampleRatio float64
	ServiceName string
	Version     string
	Headers     map[string]string
}

// Tracer starts spans and carries context across HTTP.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New exports spans in batches to cfg.Endpoint over OTLP/HTTP. Export
// failures are logged to events (never through OpenTelemetry's global
// error handler, which would print to stderr in another format).
func New(cfg Config, events *slog.Logger) (*Tracer, error) {
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(cfg.Endpoint + "/v1/traces"),
		otlptracehttp.WithTimeout(10 * time.Second),
		// Never the environment's proxy: export goes where configured.
		otlptracehttp.WithProxy(func(*http.Request) (*neturl.URL, error) { return nil, nil }),
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	return newTracer(cfg, sdktrace.NewBatchSpanProcessor(loggingExporter{exp, events})), nil
}

// loggingExporter logs export errors and hides them from the SDK.
type loggingExporter struct {
	sdktrace.SpanExporter
	events *slog.Logger
}

func (l loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := l.SpanExporter.ExportSpans(ctx, spans); err != nil {
		msg := err.Error()
		if len(msg) > 200 { // the collector's error page is not ours to log whole
			msg = msg[:200] + "…"
		}
		l.events.Warn("tracing: export failed; spans dropped", "spans", len(spans), "err", msg)
	}
	return nil
}

// NewWithProcessor builds a Tracer around sp (tests pass a recorder).
func NewWithProcessor(cfg Config, sp sdktrace.SpanProcessor) *Tracer { return newTracer(cfg, sp) }

func newTracer(cfg Config, sp sdktrace.SpanProcessor) *Tracer {
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", cfg.Version),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracer{tp: tp, tracer: tp.Tracer("gatehouse"), prop: propagation.TraceContext{}}
}

// Start starts a span.
func (t *Tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, opts...)
}

// Extract returns ctx with the trace context found in h (traceparent).
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes ctx's trace context into h.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Shutdown flushes spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.tp.Shutdown(ctx) }
