package proxy

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/observe/tracing"
	"gatehouse/internal/runtime"
)

const clientTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func tracedGate(t *testing.T, trusted string) (*gate, *recorder, *tracetest.SpanRecorder) {
	t.Helper()
	up := newRecorder(t, nil)
	doc, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`
server: { trusted_proxies: [%s] }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, trusted, hostport(up.Server))), ".")
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	var h runtime.Holder
	h.Store(snap)
	rec := tracetest.NewSpanRecorder()
	tr := tracing.NewWithProcessor(tracing.Config{SampleRatio: 1, ServiceName: "test"}, rec)
	logs := &syncBuffer{}
	e := New(Options{Holder: &h, Access: slog.New(slog.NewJSONHandler(logs, nil)), Tracer: tr})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &gate{srv: srv, logs: logs, snap: snap}, up, rec
}

func spansByKind(t *testing.T, rec *tracetest.SpanRecorder) (server, client sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			client = s
		}
	}
	if server == nil || client == nil || len(rec.Ended()) != 2 {
		t.Fatalf("spans: %v", rec.Ended())
	}
	return server, client
}

func TestTracingUntrustedClientStartsNoTrace(t *testing.T) {
	t.Parallel()
	g, up, rec := tracedGate(t, "")
	g.get(t, "/x", "Traceparent", clientTrace, "Tracestate", "evil=1", "Baggage", "user=admin")
	server, client := spansByKind(t, rec)
	if server.Name() != "GET app" || client.Name() != "GET app" {
		t.Errorf("span names %q, %q", server.Name(), client.Name())
	}
	if server.Parent().IsValid() {
		t.Errorf("an untrusted client's traceparent became our parent: %v", server.Parent())
	}
	if server.SpanContext().TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
		t.Error("joined the client's trace")
	}
	if client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("client span is not the server span's child")
	}
	want := fmt.Sprintf("00-%s-%s-01", client.SpanContext().TraceID(), client.SpanContext().SpanID())
	if got := up.last(t).Header.Get("Traceparent"); got != want {
		t.Errorf("upstream traceparent %q, want %q", got, want)
	}
	if lines := g.logs.lines(); lines[0]["trace_id"] != server.SpanContext().TraceID().String() {
		t.Errorf("access log trace_id %v", lines[0]["trace_id"])
	}
	// Nor does its trace state or baggage ride on ours to the app.
	for _, h := range []string{"Tracestate", "Baggage"} {
		if v := up.last(t).Header.Get(h); v != "" {
			t.Errorf("upstream got the client's %s: %q", h, v)
		}
	}
}

// A made-up method names no span of its own (OpenTelemetry's "_OTHER"):
// each would have been a new span name, up to 8 KiB long.
func TestTracingSpanNamesBounded(t *testing.T) {
	t.Parallel()
	g, _, rec := tracedGate(t, "")
	req := httptest.NewRequest("M12345", g.srv.URL+"/x", nil)
	req.RequestURI = ""
	g.do(t, req)
	server, client := spansByKind(t, rec)
	if server.Name() != "_OTHER app" || client.Name() != "_OTHER app" {
		t.Errorf("span names %q, %q; want _OTHER app", server.Name(), client.Name())
	}
	attrs := map[string]string{}
	for _, a := range server.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["http.request.method"] != "_OTHER" || attrs["http.request.method_original"] != "M12345" {
		t.Errorf("method attributes %v", attrs)
	}
}

func TestTracingTrustedPeerContinuesTrace(t *testing.T) {
	t.Parallel()
	g, up, rec := tracedGate(t, `"127.0.0.1"`)
	g.get(t, "/x", "Traceparent", clientTrace)
	server, client := spansByKind(t, rec)
	if server.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" ||
		server.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("server span not a child of the trusted traceparent: trace %s parent %s",
			server.SpanContext().TraceID(), server.Parent().SpanID())
	}
	if tp := up.last(t).Header.Get("Traceparent"); !strings.Contains(tp, client.SpanContext().SpanID().String()) {
		t.Errorf("upstream traceparent %q", tp)
	}
}

func TestTracingOffLeavesTraceparentAlone(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, hostport(up.Server)))
	g.get(t, "/x", "Traceparent", clientTrace)
	if got := up.last(t).Header.Get("Traceparent"); got != clientTrace {
		t.Errorf("traceparent %q", got)
	}
	if g.logs.lines()[0]["trace_id"] != "" {
		t.Errorf("trace_id logged with tracing off")
	}
}
