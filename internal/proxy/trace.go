package proxy

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"gatehouse/internal/phase"
)

// Tracing, when on (e.tracer != nil): a server span per request, started in
// the early phase and ended in logging, and a client span per upstream
// attempt, whose context is injected into the upstream request (W3C
// traceparent). A traceparent from a trusted proxy becomes the parent; from
// anyone else it is ignored, so clients cannot join or steer our traces.

func (e *Engine) startServerSpan(st *state, r *http.Request) {
	parent := context.Background()
	if st.rc.PeerTrusted {
		parent = e.tracer.Extract(parent, r.Header)
	}
	method := spanMethod(r.Method)
	st.spanCtx, st.span = e.tracer.Start(parent, method,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(st.rc.Start),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("url.path", st.rc.Path),
			attribute.String("server.address", st.rc.Host),
			attribute.String("client.address", st.clientIP()),
			attribute.String("gatehouse.request_id", st.rc.RequestID),
		))
	if method != r.Method && len(r.Method) <= maxOriginalMethod {
		st.span.SetAttributes(attribute.String("http.request.method_original", r.Method))
	}
	if sc := st.span.SpanContext(); sc.IsSampled() {
		st.rc.TraceID = sc.TraceID().String()
	}
}

// spanMethod is a method as spans name it: the methods of RFC 9110 and
// PATCH as they are, any other "_OTHER" (OpenTelemetry's HTTP semantic
// conventions), as the metrics' method label does: a client's made-up
// methods would otherwise name a new span each (up to 8 KiB long).
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// maxOriginalMethod: a longer method is not kept in
// http.request.method_original.
const maxOriginalMethod = 32

func (e *Engine) endServerSpan(st *state) {
	st.span.SetAttributes(attribute.Int("http.response.status_code", st.rc.Status),
		attribute.String("url.path", st.rc.Path))
	if st.rc.Status >= 500 {
		msg := http.StatusText(st.rc.Status)
		if st.rc.Err != nil {
			msg = st.rc.Err.Error()
		}
		st.span.SetStatus(codes.Error, msg)
	}
	st.span.End(trace.WithTimestamp(e.now()))
}

func (e *Engine) startClientSpan(st *state, r *http.Request) {
	method := spanMethod(r.Method)
	st.cctx, st.cspan = e.tracer.Start(st.spanCtx, method+" "+st.pool.Name,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("server.address", st.target.Addr),
			attribute.String("gatehouse.upstream", st.pool.Name),
			attribute.Int("http.request.resend_count", st.rc.Attempts-1),
		))
}

func (e *Engine) endClientSpan(st *state) {
	if st.w.status != 0 {
		st.cspan.SetAttributes(attribute.Int("http.response.status_code", st.w.status))
	}
	if err := st.rc.Err; err != nil && err.Source() == phase.Upstream {
		st.cspan.SetStatus(codes.Error, err.Error())
	}
	st.cspan.End()
}
