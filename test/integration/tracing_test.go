//go:build integration

package integration

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"gatehouse/internal/testutil"
)

// otlpReceiver is an in-process OTLP/HTTP collector: it decodes what the
// real exporter in the gatehouse binary sends to /v1/traces.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var msg coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) got() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

func TestTracesExportedOverOTLP(t *testing.T) {
	recv := newOTLPReceiver(t)
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	p := testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: "off" }
tracing: { endpoint: %q, service_name: gatehouse-test }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, recv.URL, up.Addr), addr)

	req, _ := http.NewRequest("GET", "http://"+addr+"/traced", nil)
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") // untrusted: ignored
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e echo
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()

	// SIGTERM flushes the batch exporter before exit.
	start := time.Now()
	p.Signal(syscall.SIGTERM)
	<-p.Done()
	t.Logf("exited %v after SIGTERM", time.Since(start))
	if !testutil.WaitFor(5*time.Second, func() bool { return len(recv.got()) >= 2 }) {
		t.Fatalf("spans received: %d\n%s", len(recv.got()), p.Output())
	}
	var server, client *tracepb.Span
	for _, s := range recv.got() {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
	}
	if server == nil || client == nil {
		t.Fatalf("want a server and a client span, got %v", recv.got())
	}
	if server.Name != "GET app" || len(server.ParentSpanId) != 0 {
		t.Errorf("server span %q parent %x", server.Name, server.ParentSpanId)
	}
	if string(client.ParentSpanId) != string(server.SpanId) || string(client.TraceId) != string(server.TraceId) {
		t.Error("client span is not the server span's child")
	}
	want := fmt.Sprintf("00-%s-%s-01", hex.EncodeToString(client.TraceId), hex.EncodeToString(client.SpanId))
	if got := e.Header.Get("Traceparent"); got != want {
		t.Errorf("upstream got traceparent %q, want %q", got, want)
	}
	if !strings.Contains(p.Output(), `"trace_id":"`+hex.EncodeToString(server.TraceId)+`"`) {
		t.Errorf("access log lacks the trace id")
	}
}
