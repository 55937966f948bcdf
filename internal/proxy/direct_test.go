package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/h2server"
	"gatehouse/internal/runtime"
	"gatehouse/internal/testutil"
)

// scriptedUpstream answers each request with the raw bytes its path names
// (/case/<name>), then closes the connection, and records every request
// head it received.
type scriptedUpstream struct {
	*testutil.RawServer
	scripts map[string]string
	mu      sync.Mutex
	heads   []*http.Request
}

func newScriptedUpstream(t *testing.T, scripts map[string]string) *scriptedUpstream {
	t.Helper()
	u := &scriptedUpstream{scripts: scripts}
	u.RawServer = testutil.ServeRaw(t, u.serve)
	return u
}

// newTLSScriptedUpstream is newScriptedUpstream behind TLS; caPath is
// the file of the CA that signed its certificate (for 127.0.0.1).
func newTLSScriptedUpstream(t *testing.T, scripts map[string]string) (u *scriptedUpstream, caPath string) {
	t.Helper()
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	certPath, keyPath := ca.Issue(t, dir, "upstream", 2, "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	caPath = filepath.Join(dir, "ca.pem")
	testutil.WriteAtomic(t, caPath, ca.PEM)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	u = &scriptedUpstream{scripts: scripts}
	u.RawServer = testutil.ServeRaw(t, func(c net.Conn) { u.serve(tls.Server(c, cfg)) })
	return u, caPath
}

func (u *scriptedUpstream) serve(c net.Conn) {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	u.mu.Lock()
	u.heads = append(u.heads, req)
	u.mu.Unlock()
	name := strings.TrimPrefix(req.URL.Path, "/case/")
	_, _ = io.WriteString(c, u.scripts[name])
}

func (u *scriptedUpstream) take() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	h := u.heads
	u.heads = nil
	return h
}

// clientView is what a client saw: the status line, header, body and
// trailer, or where reading stopped.
type clientView struct {
	Status  string
	Header  http.Header
	Body    string
	Trailer http.Header
	Err     string
}

func rawExchange(t *testing.T, addr, request string) clientView {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(c) // the client asked to close
	method, _, _ := strings.Cut(request, " ")
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		return clientView{Err: "head: " + err.Error()}
	}
	v := clientView{Status: resp.Status, Header: resp.Header}
	b, err := io.ReadAll(resp.Body)
	v.Body = string(b)
	if err != nil {
		v.Err = "body: " + err.Error()
	}
	v.Trailer = resp.Trailer
	for _, k := range []string{"Date", "X-Request-Id"} {
		delete(v.Header, k)
	}
	v.Body = requestIDField.ReplaceAllString(v.Body, `"request_id":"-"`)
	return v
}

var requestIDField = regexp.MustCompile(`"request_id":"[^"]*"`)

func headerLines(h http.Header) string {
	var lines []string
	for k, vv := range h {
		lines = append(lines, k+": "+strings.Join(vv, " | "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func upstreamView(r *http.Request) string {
	h := r.Header.Clone()
	delete(h, "X-Request-Id")
	delete(h, "X-Forwarded-Port") // each gate's own listener port
	return r.Method + " " + r.RequestURI + " Host=" + r.Host + "\n" + headerLines(h)
}

// appGate serves one route, everything to the upstream at target.
func appGate(t *testing.T, target string) *gate {
	t.Helper()
	return newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app } ]
`, target))
}

// directScripts are the upstream's answers both comparisons of the
// direct attempt with ReverseProxy use (/case/<name>).
var directScripts = map[string]string{
	"plain": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: X-Hop\r\nX-Hop: secret\r\n" +
		"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-App: a\r\nX-App: b\r\n\r\nhello",
	"chunked-trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/x-test\r\nTrailer: X-Sum\r\n\r\n" +
		"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 42\r\n\r\n",
	"undeclared-trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/x-test\r\n\r\n3\r\nabc\r\n0\r\nX-Late: 7\r\n\r\n",
	"sse":                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 12\r\n\r\ndata: one\n\n\n",
	"early-hints": "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"switch":    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"truncated": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
	"chunk-cut": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/x-test\r\n\r\n5\r\nab",
	"no-answer": "",
	"garbage":   "NOT HTTP\r\n\r\n",
	"empty":     "HTTP/1.1 204 No Content\r\nX-App: e\r\n\r\n",
	"head":      "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n",
	"no-type":   "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n<html>hi</html",
	"retry-me":  "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nX-Attempt: busy\r\n\r\nbusy",
}

// directYAML is the config of the comparisons: routes to the scripted
// upstream at addr, with header edits and a retried route.
func directYAML(addr string) string {
	return directYAMLEdits(addr, true)
}

// directYAMLEdits is directYAML with the app route's request header
// edits, or without them: then nothing edits the outbound fields, and
// the direct attempt sends the client's fields as a header block
// (fieldsMayShare) instead of a map of their own.
func directYAMLEdits(addr string, edits bool) string {
	y := fmt.Sprintf(`
upstreams:
  app: { targets: [%[1]q] }
  busy: { targets: [%[1]q], retries: { attempts: 2, on_status: [503] } }
routes:
  - name: app
    match: { path_prefix: /case }
    upstream: app
    request_headers: { set: { X-Edited: "yes" }, add: { X-App-Tag: t1 } }
    response_headers: { set: { X-Resp: "r" } }
  - name: retried
    match: { path_prefix: /retry }
    upstream: busy
    rewrite: /case/retry-me
`, addr)
	if !edits {
		y = strings.Replace(y, "    request_headers: { set: { X-Edited: \"yes\" }, add: { X-App-Tag: t1 } }\n", "", 1)
	}
	return y
}

// TestDirectMatchesReverseProxy sends the same requests through the direct
// attempt and through httputil.ReverseProxy, against an upstream that
// answers with hop-by-hop fields, trailers, 1xx, streams and broken
// bodies, and compares what the upstream and the client saw.
func TestDirectMatchesReverseProxy(t *testing.T) {
	t.Parallel()
	t.Run("plain upstream", func(t *testing.T) {
		t.Parallel()
		up := newScriptedUpstream(t, directScripts)
		testDirectMatchesReverseProxy(t, up, directYAML(up.Addr), true)
	})
	t.Run("plain upstream, fields as a block", func(t *testing.T) {
		t.Parallel()
		up := newScriptedUpstream(t, directScripts)
		testDirectMatchesReverseProxy(t, up, directYAMLEdits(up.Addr, false), false)
	})
	// The synchronous client over TLS against http.Transport over TLS.
	t.Run("TLS upstream", func(t *testing.T) {
		t.Parallel()
		up, ca := newTLSScriptedUpstream(t, directScripts)
		yaml := strings.ReplaceAll(directYAML(up.Addr), "targets: ["+strconv.Quote(up.Addr)+"]",
			"targets: ["+strconv.Quote(up.Addr)+"], tls: { ca: "+strconv.Quote(ca)+" }")
		testDirectMatchesReverseProxy(t, up, yaml, true)
	})
}

func testDirectMatchesReverseProxy(t *testing.T, up *scriptedUpstream, yaml string, edits bool) {
	edited := "client" // X-Edited as the upstream gets it
	if edits {
		edited = "yes"
	}
	viaDirect := newGate(t, yaml)
	viaH1 := newH1Gate(t, yaml) // the direct attempt under h1server's writer (AdoptHeader)
	viaRP := newGate(t, yaml)
	viaRP.srv.Config.Handler.(*Engine).noDirect = true
	for _, r := range viaDirect.snap.Routes {
		if req := httptest.NewRequest("GET", r.Pool.Scheme()+"://"+up.Addr+"/", nil); !r.Pool.Direct(req) {
			t.Fatalf("route %s: a body-less GET does not take the synchronous client", r.Name)
		}
	}

	reqs := []struct{ name, path, method, extra string }{
		{"hop-by-hop both ways", "/case/plain?a=1&b=2", "GET",
			"Connection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\n" +
				"Te: trailers, deflate\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n" +
				"X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-App-Tag: client\r\nX-Edited: client\r\n"},
		// Connection names no field present: without edits, the fields
		// go as a header block (fieldsMayShare), hop-by-hop ones left out.
		{"hop-by-hop, none named", "/case/plain", "GET",
			"Connection: close\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n" +
				"Te: trailers, deflate\r\nX-Forwarded-For: 6.6.6.6\r\nX-Request-Id: spoof\r\nX-Real-Ip: 6.6.6.6\r\nX-App-Tag: client\r\n"},
		{"query that does not parse", "/case/plain?a=1;b=2&c=%zz&d=4", "GET", "Connection: close\r\n"},
		{"trailers", "/case/chunked-trailer", "GET", "Connection: close\r\nTE: trailers\r\n"},
		{"undeclared trailer", "/case/undeclared-trailer", "GET", "Connection: close\r\n"},
		{"event stream", "/case/sse", "GET", "Connection: close\r\nAccept: text/event-stream\r\n"},
		{"103 then 200", "/case/early-hints", "GET", "Connection: close\r\n"},
		{"101 without upgrade", "/case/switch", "GET", "Connection: close\r\n"},
		{"truncated body", "/case/truncated", "GET", "Connection: close\r\n"},
		{"cut chunk", "/case/chunk-cut", "GET", "Connection: close\r\n"},
		{"no answer", "/case/no-answer", "GET", "Connection: close\r\n"},
		{"not HTTP", "/case/garbage", "GET", "Connection: close\r\n"},
		{"204", "/case/empty", "DELETE", "Connection: close\r\n"},
		{"HEAD", "/case/head", "HEAD", "Connection: close\r\n"},
		{"sniffed type", "/case/no-type", "GET", "Connection: close\r\n"},
		{"retried status", "/retry", "GET", "Connection: close\r\n"},
	}
	for _, rq := range reqs {
		t.Run(rq.name, func(t *testing.T) {
			raw := rq.method + " " + rq.path + " HTTP/1.1\r\nHost: app.test\r\nUser-Agent: probe\r\n" + rq.extra + "\r\n"
			if in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw))); err != nil || in.Header["Upgrade"] != nil || in.Header["Expect"] != nil {
				t.Fatalf("the request would not go direct: %v", err)
			}
			gotDirect := rawExchange(t, viaDirect.srv.Listener.Addr().String(), raw)
			upDirect := up.take()
			gotH1 := rawExchange(t, viaH1.srv.Listener.Addr().String(), raw)
			upH1 := up.take()
			gotRP := rawExchange(t, viaRP.srv.Listener.Addr().String(), raw)
			upRP := up.take()
			if gd, gr := fmt.Sprintf("%+v", gotDirect), fmt.Sprintf("%+v", gotRP); gd != gr {
				t.Errorf("client saw\n direct: %s\nreverse proxy: %s", gd, gr)
			}
			if gh, gr := fmt.Sprintf("%+v", gotH1), fmt.Sprintf("%+v", gotRP); gh != gr {
				t.Errorf("client saw\n direct under h1server: %s\nreverse proxy: %s", gh, gr)
			}
			if len(upH1) != len(upRP) {
				t.Fatalf("upstream got %d requests under h1server, %d through ReverseProxy", len(upH1), len(upRP))
			}
			if len(upDirect) != len(upRP) {
				t.Fatalf("upstream got %d requests direct, %d through ReverseProxy", len(upDirect), len(upRP))
			}
			for i := range upDirect {
				if d, r := upstreamView(upDirect[i]), upstreamView(upRP[i]); d != r {
					t.Errorf("upstream saw\n direct:\n%s\nreverse proxy:\n%s", d, r)
				}
			}
			if rq.name == "hop-by-hop, none named" {
				h := upDirect[0].Header
				for _, k := range []string{"Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Connection"} {
					if h[k] != nil {
						t.Errorf("upstream got %s: %q", k, h[k])
					}
				}
				if len(h["Te"]) != 1 || h["Te"][0] != "trailers" || len(h["X-Forwarded-For"]) != 1 || h["X-Forwarded-For"][0] != "127.0.0.1" ||
					len(h["X-Request-Id"]) != 1 || h["X-Request-Id"][0] == "spoof" || len(h["X-Real-Ip"]) != 1 || h["X-Real-Ip"][0] != "127.0.0.1" ||
					h.Get("User-Agent") != "probe" || !slices.Contains(h["X-App-Tag"], "client") {
					t.Errorf("upstream header: %v", h)
				}
			}
			if rq.name == "hop-by-hop both ways" {
				// Not only equal: right.
				h := upDirect[0].Header
				for _, k := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization"} {
					if h[k] != nil {
						t.Errorf("upstream got %s", k)
					}
				}
				if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("Te") != "trailers" || h.Get("X-Edited") != edited ||
					h.Get("User-Agent") != "probe" || h.Get("X-Forwarded-Proto") != "http" || h["Forwarded"][0] != "for=127.0.0.1;host=app.test;proto=http" {
					t.Errorf("upstream header: %v", h)
				}
				for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
					if gotDirect.Header[k] != nil {
						t.Errorf("client got %s", k)
					}
				}
				if gotDirect.Body != "hello" || gotDirect.Header.Get("X-Resp") != "r" {
					t.Errorf("client saw %+v", gotDirect)
				}
			}
		})
	}
}

// h2View is what an HTTP/2 client saw of one exchange.
type h2View struct {
	Proto  string
	Early  []string // 1xx responses: status and header
	Client clientView
}

// h2Exchange sends one request to g over TLS + HTTP/2, on a connection
// of its own (stream IDs and resets do not depend on earlier requests).
func h2Exchange(t *testing.T, g *gate, method, path, body string, hdr http.Header) h2View {
	t.Helper()
	tr := g.srv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	defer tr.CloseIdleConnections()
	var v h2View
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		v.Early = append(v.Early, fmt.Sprint(code, " ", headerLines(http.Header(h))))
		return nil
	}}
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, g.srv.URL+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.test"
	maps.Copy(req.Header, hdr)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // without the URL: each gate has its own port
		}
		v.Client.Err = "round trip: " + err.Error()
		return v
	}
	defer resp.Body.Close()
	v.Proto = resp.Proto
	v.Client.Status, v.Client.Header = resp.Status, resp.Header
	b, err := io.ReadAll(resp.Body)
	v.Client.Body = requestIDField.ReplaceAllString(string(b), `"request_id":"-"`)
	if err != nil {
		v.Client.Err = "body: " + err.Error()
	}
	v.Client.Trailer = resp.Trailer
	for _, k := range []string{"Date", "X-Request-Id"} {
		delete(v.Client.Header, k)
	}
	return v
}

// TestDirectMatchesReverseProxyOverHTTP2 is TestDirectMatchesReverseProxy
// with HTTP/2 clients over TLS: net/http's HTTP/2 server hands the engine
// a request Body even when the stream ended with its header, and a
// ResponseWriter of its own (flushes, trailers, 1xx, resets), so the
// direct attempt is compared with ReverseProxy under it as well; and the
// body-less requests are checked to take the direct attempt.
func TestDirectMatchesReverseProxyOverHTTP2(t *testing.T) {
	t.Parallel()
	t.Run("edits", func(t *testing.T) { t.Parallel(); testDirectMatchesReverseProxyOverHTTP2(t, true) })
	t.Run("fields as a block", func(t *testing.T) { t.Parallel(); testDirectMatchesReverseProxyOverHTTP2(t, false) })
}

func testDirectMatchesReverseProxyOverHTTP2(t *testing.T, edits bool) {
	edited := "client" // X-Edited as the upstream gets it
	if edits {
		edited = "yes"
	}
	up := newScriptedUpstream(t, directScripts)
	yaml := directYAMLEdits(up.Addr, edits)
	startTLS := func(noDirect, ownH2 bool) *gate {
		srv := httptest.NewUnstartedServer(nil)
		srv.EnableHTTP2 = true
		g := startGate(t, srv, yaml, false)
		g.srv.Config.Handler.(*Engine).noDirect = noDirect
		if ownH2 {
			// As internal/app configures it: the engine keeps no
			// request's header map past the request.
			h2server.New(h2server.Config{ReuseRequestHeaders: true}).Configure(srv.Config)
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return g
	}
	viaDirect, viaRP := startTLS(false, false), startTLS(true, false)
	// viaOwn is viaDirect on Gatehouse's own HTTP/2 server (h2server,
	// server.fast_http2): the client and the upstream must see what they
	// see through net/http's.
	viaOwn := startTLS(false, true)
	// What the engine of viaDirect decided for each request it got.
	var app *runtime.Route
	for _, r := range viaDirect.snap.Routes {
		if r.Name == "app" {
			app = r
		}
	}
	var mu sync.Mutex
	var wentDirect []bool
	engine := viaDirect.srv.Config.Handler
	viaDirect.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		wentDirect = append(wentDirect, app.Pool.DirectFor(r))
		mu.Unlock()
		engine.ServeHTTP(w, r)
	})

	reqs := []struct {
		name, method, path, body string
		hdr                      http.Header
		direct                   bool
	}{
		{"forwarding and edits", "GET", "/case/plain?a=1&b=2", "", http.Header{
			"Te": {"trailers"}, "X-Forwarded-For": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"},
			"X-Forwarded-Host": {"evil"}, "X-Forwarded-Proto": {"http"}, "X-App-Tag": {"client"}, "X-Edited": {"client"},
			"Cookie": {"a=1", "b=2"}}, true},
		{"query that does not parse", "GET", "/case/plain?a=1;b=2&c=%zz&d=4", "", nil, true},
		{"trailers", "GET", "/case/chunked-trailer", "", http.Header{"Te": {"trailers"}}, true},
		{"undeclared trailer", "GET", "/case/undeclared-trailer", "", nil, true},
		{"event stream", "GET", "/case/sse", "", http.Header{"Accept": {"text/event-stream"}}, true},
		{"103 then 200", "GET", "/case/early-hints", "", nil, true},
		{"101 without upgrade", "GET", "/case/switch", "", nil, true},
		{"truncated body", "GET", "/case/truncated", "", nil, true},
		{"cut chunk", "GET", "/case/chunk-cut", "", nil, true},
		{"no answer", "GET", "/case/no-answer", "", nil, true},
		{"not HTTP", "GET", "/case/garbage", "", nil, true},
		{"204", "DELETE", "/case/empty", "", nil, true},
		{"HEAD", "HEAD", "/case/head", "", nil, true},
		{"sniffed type", "GET", "/case/no-type", "", nil, true},
		{"POST without a body", "POST", "/case/plain", "", nil, true},
		{"POST with a body", "POST", "/case/plain", "payload", nil, true},
		{"retried status", "GET", "/retry", "", nil, true},
	}
	for _, rq := range reqs {
		t.Run(rq.name, func(t *testing.T) {
			mu.Lock()
			wentDirect = nil
			mu.Unlock()
			gotDirect := h2Exchange(t, viaDirect, rq.method, rq.path, rq.body, rq.hdr)
			upDirect := up.take()
			gotRP := h2Exchange(t, viaRP, rq.method, rq.path, rq.body, rq.hdr)
			upRP := up.take()
			gotOwn := h2Exchange(t, viaOwn, rq.method, rq.path, rq.body, rq.hdr)
			upOwn := up.take()
			if gd, go_ := fmt.Sprintf("%+v", gotDirect), fmt.Sprintf("%+v", gotOwn); gd != go_ {
				t.Errorf("client saw\n net/http's HTTP/2 server: %s\n h2server: %s", gd, go_)
			}
			if len(upOwn) != len(upDirect) {
				t.Fatalf("upstream got %d requests through h2server, %d through net/http's", len(upOwn), len(upDirect))
			}
			for i := range upOwn {
				if d, o := upstreamView(upDirect[i]), upstreamView(upOwn[i]); d != o {
					t.Errorf("upstream saw\n net/http's HTTP/2 server:\n%s\nh2server:\n%s", d, o)
				}
			}
			if gotDirect.Proto != "HTTP/2.0" && !strings.HasPrefix(gotDirect.Client.Err, "round trip: ") {
				t.Fatalf("client spoke %q, want HTTP/2.0 (%+v)", gotDirect.Proto, gotDirect)
			}
			if gd, gr := fmt.Sprintf("%+v", gotDirect), fmt.Sprintf("%+v", gotRP); gd != gr {
				t.Errorf("client saw\n direct: %s\nreverse proxy: %s", gd, gr)
			}
			if len(upDirect) != len(upRP) {
				t.Fatalf("upstream got %d requests direct, %d through ReverseProxy", len(upDirect), len(upRP))
			}
			for i := range upDirect {
				if d, r := upstreamView(upDirect[i]), upstreamView(upRP[i]); d != r {
					t.Errorf("upstream saw\n direct:\n%s\nreverse proxy:\n%s", d, r)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if rq.path != "/retry" && (len(wentDirect) != 1 || wentDirect[0] != rq.direct) {
				t.Errorf("went direct: %v, want [%v]", wentDirect, rq.direct)
			}
			if rq.name == "forwarding and edits" {
				h := upDirect[0].Header
				if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("Te") != "trailers" || h.Get("X-Edited") != edited ||
					h.Get("X-Forwarded-Proto") != "https" || h.Get("Cookie") != "a=1; b=2" {
					t.Errorf("upstream header: %v", h)
				}
				if gotDirect.Client.Body != "hello" || gotDirect.Client.Header.Get("X-Resp") != "r" || gotDirect.Client.Header["X-Hop"] != nil {
					t.Errorf("client saw %+v", gotDirect)
				}
			}
		})
	}
}

// TestDirectTakesRequestsItCanFrame pins which attempts go direct, so
// the comparisons above compare what they mean to: all but upgrades,
// Expect, and bodies of unknown length on GET-like methods.
func TestDirectTakesRequestsItCanFrame(t *testing.T) {
	t.Parallel()
	g := appGate(t, hostport(newRecorder(t, nil).Server))
	pool := g.snap.Fallback
	for _, r := range g.snap.Routes {
		if r.Name == "app" {
			pool = r
		}
	}
	cases := []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"GET", httptest.NewRequest("GET", "/", nil), true},
		{"POST with a body", httptest.NewRequest("POST", "/", strings.NewReader("x")), true},
		{"POST, chunked", func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader("x"))
			r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
			return r
		}(), true},
		{"DELETE, chunked", func() *http.Request {
			r := httptest.NewRequest("DELETE", "/", strings.NewReader("x"))
			r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
			return r
		}(), false},
		{"upgrade", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}(), false},
		{"expect", func() *http.Request {
			r := httptest.NewRequest("PUT", "/", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}(), false},
		// net/http's HTTP/2 server: a Body on every request, ContentLength
		// 0 when the stream ended with the header, -1 while it is open
		// without a Content-Length.
		{"HTTP/2 stream ended with its header", h2Shaped(0), true},
		{"HTTP/2 stream open for a body", h2Shaped(-1), false},
		{"HTTP/2 with a Content-Length", h2Shaped(5), true},
	}
	for _, c := range cases {
		if got := pool.Pool.DirectFor(c.req); got != c.want {
			t.Errorf("%s: direct %v, want %v", c.name, got, c.want)
		}
	}
}

// h2Shaped is a GET as net/http's HTTP/2 server hands it over.
func h2Shaped(contentLength int64) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Body, r.ContentLength = io.NopCloser(strings.NewReader("")), contentLength
	return r
}

// tickingStream answers with n lines, one every 50ms, each flushed.
func tickingStream(n int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
		}
	}
}

// TestWriteDeadlineRenewedOnLongStreams: the write timeout bounds each
// write, not the response. A stream that lasts longer than it, with
// writes well within it, reaches the client whole, on a connection whose
// deadline is renewed through its connState.
func TestWriteDeadlineRenewedOnLongStreams(t *testing.T) {
	t.Parallel()
	const chunks = 12
	up := newRecorder(t, tickingStream(chunks))
	srv := writeTimeoutGate(t, hostport(up.Server), 250*time.Millisecond)
	for range 2 { // the second request reuses the connection and its state
		resp, err := srv.Client().Get(srv.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || strings.Count(string(b), "chunk") != chunks {
			t.Fatalf("stream of %d chunks over %v with a 250ms write timeout: got %q, %v", chunks, chunks*50*time.Millisecond, b, err)
		}
	}
}

// TestWriteDeadlineRenewedOnLongStreamsOverHTTP2 is the same over HTTP/2,
// on net/http's server and on h2server: each stream's own deadline is
// renewed as its writes go, within renewSlack of the write timeout.
func TestWriteDeadlineRenewedOnLongStreamsOverHTTP2(t *testing.T) {
	t.Parallel()
	const chunks = 12
	up := newRecorder(t, tickingStream(chunks))
	for _, own := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(New(Options{Holder: oneRouteHolder(t, hostport(up.Server)), WriteTimeout: 250 * time.Millisecond}))
		srv.Config.ConnContext = ConnContext
		srv.EnableHTTP2 = true
		if own {
			h2server.New(h2server.Config{}).Configure(srv.Config)
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		for range 2 {
			resp, err := srv.Client().Get(srv.URL + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || err != nil || strings.Count(string(b), "chunk") != chunks {
				t.Fatalf("h2server %v: stream of %d chunks over %v with a 250ms write timeout: %s, got %q, %v", own, chunks, chunks*50*time.Millisecond, resp.Proto, b, err)
			}
		}
	}
}

// TestForwardingPerRequestOnOneConnection: the forwarding values kept per
// connection follow each request's own Host.
func TestForwardingPerRequestOnOneConnection(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := appGate(t, hostport(up.Server))
	c, err := net.Dial("tcp", g.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, host := range []string{"a.test", "a.test", "b.test:8080", "a.test"} {
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := up.last(t).Header
		want := "for=127.0.0.1;host=" + host + ";proto=http"
		if host == "b.test:8080" {
			want = `for=127.0.0.1;host="b.test:8080";proto=http`
		}
		if f, x := got.Get("Forwarded"), got.Get("X-Forwarded-Host"); f != want || x != host || got.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Fatalf("Host %s: Forwarded %q, X-Forwarded-Host %q, want %q", host, f, x, want)
		}
	}
}

// A route's header edit can make a request one the synchronous client
// does not send (Expect): it still reaches the upstream, through the
// Transport, on both paths.
func TestDirectAfterEditedExpect(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app, request_headers: { set: { Expect: "100-continue" } } } ]
`, hostport(up.Server))
	for _, noDirect := range []bool{true, false} {
		g := newGate(t, yaml)
		g.srv.Config.Handler.(*Engine).noDirect = noDirect
		resp, body := g.get(t, "/x")
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("noDirect=%v: %d %q", noDirect, resp.StatusCode, body)
		}
	}
}

// An upstream status below 100 is a bad gateway on either path, not a
// status passed to net/http (which panics on it).
func TestUpstreamStatusBelow100(t *testing.T) {
	t.Parallel()
	up := newScriptedUpstream(t, map[string]string{"odd": "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"})
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q], retries: { attempts: 1 } } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app } ]
`, up.Addr))
	for _, method := range []string{"GET", "POST"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("body") // the Transport path
		}
		req, _ := http.NewRequest(method, g.srv.URL+"/case/odd", body)
		resp, got := g.do(t, req)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: %d %q, want 502", method, resp.StatusCode, got)
		}
	}
}

// oneRouteHolder holds the snapshot of one route to target.
// oneRoute is a config with one route, every path, to one upstream
// target (host:port).
func oneRoute(target string) string {
	return fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, target)
}

func oneRouteHolder(t *testing.T, target string) *runtime.Holder {
	t.Helper()
	doc, err := config.Parse("test.yaml", []byte(oneRoute(target)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	var h runtime.Holder
	h.Store(snap)
	return &h
}

// writeTimeoutGate is a one-route gateway to target with the given
// write timeout, behind net/http's server as internal/app serves it.
func writeTimeoutGate(t *testing.T, target string, writeTimeout time.Duration) *httptest.Server {
	t.Helper()
	h := oneRouteHolder(t, target)
	srv := httptest.NewUnstartedServer(New(Options{Holder: h, WriteTimeout: writeTimeout}))
	srv.Config.ConnContext = ConnContext
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestWriteDeadlineOnEveryRequestOfAConnection: net/http clears a
// connection's write deadline after each response, so the deadline the
// engine keeps per connection must be renewed by the next request's first
// write. Regression: the second request on a connection was written with
// no deadline at all, and a client that stopped reading held it forever.
func TestWriteDeadlineOnEveryRequestOfAConnection(t *testing.T) {
	t.Parallel()
	gone := make(chan struct{})
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			_, _ = io.WriteString(w, "small")
			return
		}
		defer close(gone)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for { // until the gateway gives up on its client and hangs up
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	srv := writeTimeoutGate(t, hostport(up.Server), 200*time.Millisecond)

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// At once, within the first request's deadline slack: then stop reading.
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading its second response was never timed out (write_timeout 200ms)")
	}
}

// The direct attempt's outbound URL, header map and forwarding values are
// reused from request to request (outbound): nothing of one request may
// reach another's upstream request, whether they follow each other or run
// side by side.
func TestDirectReusedPartsCarryNothingOver(t *testing.T) {
	t.Parallel()
	var bad atomic.Int64
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		tag := strings.TrimPrefix(r.URL.Path, "/flow/")
		if r.Header.Get("X-Tag") != tag || r.URL.RawQuery != "q="+tag ||
			(tag == "plain" && r.Header.Get("X-Only-First") != "") {
			bad.Add(1)
		}
		_, _ = io.WriteString(w, tag)
	})
	g := newH1Gate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`, hostport(up.Server)))
	base := "http://" + g.srv.Listener.Addr().String()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer c.CloseIdleConnections()
	get := func(tag string, extra http.Header) {
		req, _ := http.NewRequest("GET", base+"/flow/"+tag+"?q="+tag, nil)
		for k, vv := range extra {
			req.Header[k] = vv
		}
		req.Header.Set("X-Tag", tag)
		resp, err := c.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tag {
			t.Errorf("request %s got %q", tag, b)
		}
	}
	// One after the other: fields of the first must not stay.
	get("first", http.Header{"X-Only-First": {"1"}, "X-A": {"a"}, "X-B": {"b"}})
	get("plain", nil)
	// Side by side.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				get(fmt.Sprintf("%d-%d", i, j), http.Header{"X-Pad": {strings.Repeat("p", i*j%17)}})
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d upstream requests carried another request's parts", n)
	}
}

// reuseCase is the client's own part of request i of connection c in
// TestH1ReusedHeaderMapsReachNoOtherUpstream: fields that come and go
// from one request to the next, some of them credentials, some named in
// Connection (which must not reach the upstream at all).
func reuseCase(c, i int) (head string, upstreamWants http.Header) {
	tag := fmt.Sprintf("%d-%d", c, i)
	want := http.Header{"X-Tag": {tag}}
	var b strings.Builder
	fmt.Fprintf(&b, "GET /flow/%d/%d?q=%s HTTP/1.1\r\nHost: gate.example\r\nX-Tag: %s\r\n", c, i, tag, tag)
	for k := range 6 {
		if (i*7+c)>>k&1 == 1 {
			name := fmt.Sprintf("X-F%d", k)
			fmt.Fprintf(&b, "%s: %s\r\n", strings.ToLower(name), tag)
			want[name] = []string{tag}
		}
	}
	if i%2 == 0 {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", tag)
		want["Authorization"] = []string{"Bearer " + tag}
	}
	if i%3 == 0 {
		fmt.Fprintf(&b, "Cookie: s=%s\r\nCookie: t=%s\r\n", tag, tag)
		want["Cookie"] = []string{"s=" + tag, "t=" + tag}
	}
	if i%4 == 1 {
		fmt.Fprintf(&b, "Connection: X-Hop\r\nX-Hop: %s\r\n", tag)
	}
	b.WriteString("\r\n")
	return b.String(), want
}

// reuseCaseKeys are the fields reuseCase may send: what the upstream
// compares.
var reuseCaseKeys = []string{"X-Tag", "X-F0", "X-F1", "X-F2", "X-F3", "X-F4", "X-F5", "Authorization", "Cookie", "X-Hop"}

// reuseChecker is an upstream that checks that each request of
// reuseCase (c, i) carries exactly want(c, i) of reuseCaseKeys and the
// query q=<tag>, and answers with the tag.
type reuseChecker struct {
	up       *recorder
	bad      atomic.Int64
	mu       sync.Mutex
	firstBad string
}

func newReuseChecker(t *testing.T, want func(c, i int) http.Header) *reuseChecker {
	rc := &reuseChecker{}
	rc.up = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		var c, i int
		if _, err := fmt.Sscanf(r.URL.Path, "/flow/%d/%d", &c, &i); err != nil {
			rc.bad.Add(1)
			return
		}
		want := want(c, i)
		got := http.Header{}
		for _, k := range reuseCaseKeys {
			if vv := r.Header[k]; vv != nil {
				got[k] = vv
			}
		}
		if d := cmp.Diff(want, got); d != "" || r.URL.RawQuery != "q="+want.Get("X-Tag") {
			if rc.bad.Add(1) == 1 {
				rc.mu.Lock()
				rc.firstBad = fmt.Sprintf("%s?%s (-want +got):\n%s", r.URL.Path, r.URL.RawQuery, d)
				rc.mu.Unlock()
			}
		}
		_, _ = io.WriteString(w, want.Get("X-Tag"))
	})
	return rc
}

// verify fails t unless the upstream saw n requests, each with exactly
// its own fields.
func (rc *reuseChecker) verify(t *testing.T, n int) {
	t.Helper()
	if b := rc.bad.Load(); b != 0 {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		t.Fatalf("%d upstream requests did not carry exactly their own fields; the first: %s", b, rc.firstBad)
	}
	if got := rc.up.count(); got != n {
		t.Fatalf("upstream saw %d requests, want %d", got, n)
	}
}

// TestH1ReusedHeaderMapsReachNoOtherUpstream: h1server reuses a
// connection's request header map (ReuseRequestHeaders, as on the plain
// listeners). Requests with differing fields, one after the other and
// pipelined, on keep-alive connections side by side, through the real
// engine and upstream client: each upstream request carries exactly its
// own request's fields, none of another's.
func TestH1ReusedHeaderMapsReachNoOtherUpstream(t *testing.T) {
	t.Parallel()
	rc := newReuseChecker(t, func(c, i int) http.Header {
		_, want := reuseCase(c, i)
		return want
	})
	g := newH1Gate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`, hostport(rc.up.Server)))
	addr := g.srv.Listener.Addr().String()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			if err := sendReuseCases(addr, c, 60); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rc.verify(t, 4*60)
}

// TestH2ReusedHeaderMapsReachNoOtherUpstream is
// TestH1ReusedHeaderMapsReachNoOtherUpstream over HTTP/2: h2server gives
// a request's header map back after its handler (ReuseRequestHeaders,
// as internal/app configures it), and streams run side by side on one
// connection. Each upstream request carries exactly its own request's
// fields, none of another's.
func TestH2ReusedHeaderMapsReachNoOtherUpstream(t *testing.T) {
	t.Parallel()
	h2Case := func(c, i int) http.Header {
		_, want := reuseCase(c, i)
		if cookies := want["Cookie"]; cookies != nil {
			want["Cookie"] = []string{strings.Join(cookies, "; ")} // as HTTP/2 servers join them
		}
		return want
	}
	rc := newReuseChecker(t, h2Case)
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	startGate(t, srv, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`, hostport(rc.up.Server)), false)
	h2server.New(h2server.Config{ReuseRequestHeaders: true}).Configure(srv.Config)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := range 60 {
				tag := fmt.Sprintf("%d-%d", c, i)
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/flow/%d/%d?q=%s", srv.URL, c, i, tag), nil)
				for k, vv := range h2Case(c, i) {
					req.Header[k] = vv
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || string(b) != tag {
					t.Errorf("request %s: %s %q", tag, resp.Proto, b)
				}
			}
		})
	}
	wg.Wait()
	rc.verify(t, 4*60)
}

// sendReuseCases sends n reuseCase requests of connection c on one
// connection to addr, every fifth write pipelining three, and checks each
// response is its own.
func sendReuseCases(addr string, c, n int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	for i := 0; i < n; {
		batch := 1
		if i%5 == 4 {
			batch = min(3, n-i)
		}
		var heads strings.Builder
		for j := range batch {
			head, _ := reuseCase(c, i+j)
			heads.WriteString(head)
		}
		if _, err := io.WriteString(conn, heads.String()); err != nil {
			return err
		}
		for j := range batch {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%d-%d", c, i+j); resp.StatusCode != 200 || string(b) != want {
				return fmt.Errorf("request %s got %d %q", want, resp.StatusCode, b)
			}
		}
		i += batch
	}
	return nil
}

// appendForwarding writes nothing, and says so, when a value could not
// be written as a field value (one a trusted proxy sent): the fields
// then go into the map, where the request writer refuses them.
func TestAppendForwardingRefusesInvalidValues(t *testing.T) {
	t.Parallel()
	good := []string{"1.2.3.4", "http", "app", "80", "for=1.2.3.4", "", "1.2.3.4"}
	b, ok := appendForwarding([]byte("X: 1\r\n"), good, []string{"id-1"})
	want := "X: 1\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: app\r\n" +
		"X-Forwarded-Port: 80\r\nForwarded: for=1.2.3.4\r\nX-Real-Ip: 1.2.3.4\r\nX-Request-Id: id-1\r\n"
	if !ok || string(b) != want {
		t.Fatalf("appendForwarding = %q, %v; want %q", b, ok, want)
	}
	for i := range good {
		bad := slices.Clone(good)
		bad[i] = "x\r\nX-Injected: 1"
		if b, ok := appendForwarding([]byte("X: 1\r\n"), bad, []string{"id-1"}); ok || string(b) != "X: 1\r\n" {
			t.Errorf("value %d with CRLF: %q, %v", i, b, ok)
		}
	}
	if _, ok := appendForwarding(nil, good, []string{"id\n1"}); ok {
		t.Error("request id with LF accepted")
	}
}

// A request whose Connection field names no field it has ("Connection:
// close", the commonest) shares its fields as a header block when nothing
// edits them; one naming a field it has copies, to leave that field out.
func TestConnectionNamingNothingSharesFields(t *testing.T) {
	t.Parallel()
	for conn, want := range map[string]bool{"": true, "close": true, "close, X-Gone": true, "close, X-A": false} {
		in := httptest.NewRequest("GET", "/x", nil)
		in.Header.Set("X-A", "1")
		if conn != "" {
			in.Header.Set("Connection", conn)
		}
		ob := &outbound{h: http.Header{}}
		if _, shared := directRequest(in, context.Background(), ob, true); shared != want {
			t.Errorf("Connection %q: shared %v, want %v", conn, shared, want)
		}
		if _, shared := directRequest(in, context.Background(), &outbound{h: http.Header{}}, false); shared {
			t.Errorf("Connection %q: shared although something edits the fields", conn)
		}
	}
}
