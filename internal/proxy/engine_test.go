package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/h1server"
	"gatehouse/internal/lb"
	"gatehouse/internal/observe/logging"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/phase"
	"gatehouse/internal/runtime"
)

// seen is what a test upstream received.
type seen struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

// recorder is an upstream that records requests and answers 200 "ok"
// unless the test replaces its handler.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(b)})
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) last(t *testing.T) seen {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("upstream saw no request")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

type gate struct {
	srv  *httptest.Server
	logs *syncBuffer
	snap *runtime.Snapshot
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		_ = json.Unmarshal([]byte(l), &m)
		out = append(out, m)
	}
	return out
}

// newGate compiles yaml (with %s placeholders already filled) and serves
// the engine on an httptest server.
func newGate(t *testing.T, yaml string) *gate {
	t.Helper()
	return startGate(t, httptest.NewUnstartedServer(nil), yaml, true)
}

// bothH1Servers are the two HTTP/1.1 servers a plain listener can run
// (server.fast_http1 false and true), for tests that attack both.
var bothH1Servers = []struct {
	name string
	new  func(*testing.T, string) *gate
}{{"net/http", newGate}, {"h1server", newH1Gate}}

// newH1Gate is newGate served by h1server, as internal/app serves plain
// listeners: the requests it takes reach the engine through its writer.
// Only the listener's address is meant to be used (srv is not started).
func newH1Gate(t *testing.T, yaml string) *gate {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	g := startGate(t, srv, yaml, false)
	serveH1(t, srv.Config, srv.Listener)
	return g
}

// serveH1 serves srv's handler on ln with h1server, as internal/app
// serves plain listeners (header maps reused), until the test ends.
func serveH1(tb testing.TB, srv *http.Server, ln net.Listener) {
	tb.Helper()
	hs := h1server.New(srv, ConnContextKeepingDeadlines)
	hs.ReuseRequestHeaders(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	tb.Cleanup(func() {
		_ = hs.Close()
		<-done
	})
}

// startGate is newGate on srv, an unstarted server: tests whose config
// names the gateway's own address take it from srv.Listener first.
func startGate(t *testing.T, srv *httptest.Server, yaml string, start bool) *gate {
	t.Helper()
	doc, err := config.Parse("test.yaml", []byte(yaml), t.TempDir())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	snap, err := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	var h runtime.Holder
	h.Store(snap)
	logs := &syncBuffer{}
	srv.Config.Handler = New(Options{Holder: &h, Access: slog.New(slog.NewJSONHandler(logs, nil))})
	srv.Config.ConnContext = ConnContext // as internal/app serves it
	if start {
		srv.Start()
		t.Cleanup(srv.Close)
	}
	return &gate{srv: srv, logs: logs, snap: snap}
}

func (g *gate) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (g *gate) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", g.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return g.do(t, req)
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestForwardingHeadersFromUntrustedPeer(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: /admin }, upstream: app }]
`, hostport(up.Server)))
	resp, _ := g.get(t, "/admin/x?q=1",
		"X-Forwarded-For", "6.6.6.6",
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https",
		"X-Forwarded-Prefix", "/evil",
		"Forwarded", "for=6.6.6.6;host=evil.example",
		"X-Middleware-Subrequest", "middleware:middleware:middleware:middleware:middleware",
		"X-Request-Id", "attacker-chosen",
		"Connection", "X-Secret",
		"X-Secret", "hop-by-hop",
	)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := up.last(t)
	host := hostport(g.srv)
	want := map[string]string{
		"X-Forwarded-For":         "127.0.0.1",
		"X-Forwarded-Host":        host,
		"X-Forwarded-Proto":       "http",
		"X-Forwarded-Port":        strings.Split(host, ":")[1],
		"Forwarded":               fmt.Sprintf("for=127.0.0.1;host=%q;proto=http", host),
		"X-Forwarded-Prefix":      "",
		"X-Middleware-Subrequest": "",
		"X-Secret":                "",
	}
	for k, v := range want {
		if g := strings.Join(got.Header[k], ","); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if rid := got.Header.Get("X-Request-Id"); rid == "" || rid == "attacker-chosen" || rid != resp.Header.Get("X-Request-Id") {
		t.Errorf("request id upstream %q, client %q", rid, resp.Header.Get("X-Request-Id"))
	}
	if got.URI != "/admin/x?q=1" || got.Host != host {
		t.Errorf("upstream saw %s with Host %s", got.URI, got.Host)
	}
}

// A trusted proxy's forwarding fields are kept and extended, and those
// Gatehouse writes itself replace the proxy's: each reaches the upstream
// once. The same on a route whose upstream filters edit the request (the
// fields then go through the outbound header map) and on one without
// (they go as a header block after it).
func TestForwardingHeadersFromTrustedPeer(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
server: { trusted_proxies: ["127.0.0.1"] }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: filtered, match: { path_prefix: /filtered }, upstream: app, request_headers: { set: { X-Extra: "1" } } }
  - { name: app, match: { path_prefix: / }, upstream: app }
`, hostport(up.Server)))
	for i, path := range []string{"/", "/filtered"} {
		g.get(t, path, "X-Forwarded-For", "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto", "https",
			"X-Forwarded-Host", "app.example.com", "X-Request-Id", "lb-42",
			"X-Real-Ip", "198.51.100.7", "X-Forwarded-Port", "8443", "X-Forwarded-Prefix", "/lb",
			"Forwarded", "for=203.0.113.9")
		got := up.last(t)
		want := map[string]string{
			"X-Forwarded-For":    "203.0.113.9, 127.0.0.1, 127.0.0.1",
			"X-Forwarded-Proto":  "https",
			"X-Forwarded-Host":   "app.example.com",
			"X-Request-Id":       "lb-42",
			"X-Real-Ip":          "203.0.113.9", // the client Gatehouse believes, never the proxy's field
			"X-Forwarded-Port":   "8443",
			"X-Forwarded-Prefix": "", // no prefix removed here
			// This hop's element says what Gatehouse itself received.
			"Forwarded": fmt.Sprintf("for=203.0.113.9, for=127.0.0.1;host=%q;proto=http", hostport(g.srv)),
		}
		for k, v := range want {
			if got := got.Header[k]; strings.Join(got, "|") != v {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
		lines := g.logs.lines()
		if len(lines) != i+1 || lines[i]["client_ip"] != "203.0.113.9" {
			t.Errorf("%s: access log client_ip: %v", path, lines)
		}
	}
}

// TestClientIPFromForwardedForWithPorts: X-Forwarded-For entries some
// load balancers write with the client's port are the client's address,
// not a malformed entry that stops the walk at the proxy (which would
// put every client behind it in one rate-limit bucket).
func TestClientIPFromForwardedForWithPorts(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
server: { trusted_proxies: ["127.0.0.1", "10.0.0.0/8"] }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, hostport(up.Server)))
	for i, tc := range []struct{ xff, want string }{
		{"203.0.113.9:4711", "203.0.113.9"},
		{"[2001:db8::1]:4711, 10.0.0.2:80", "2001:db8::1"},
		{"198.51.100.7, 10.0.0.2:443", "198.51.100.7"},
		{"garbage:x, 10.0.0.2", "10.0.0.2"}, // the walk stops at what it cannot read
	} {
		g.get(t, "/", "X-Forwarded-For", tc.xff)
		if got := up.last(t).Header.Get("X-Real-Ip"); got != tc.want {
			t.Errorf("X-Forwarded-For %q: X-Real-Ip %q, want %q", tc.xff, got, tc.want)
		}
		if lines := g.logs.lines(); len(lines) != i+1 || lines[i]["client_ip"] != tc.want {
			t.Errorf("X-Forwarded-For %q: access log %v", tc.xff, lines[len(lines)-1])
		}
	}
}

func TestPathAndHostPolicies(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	addr := hostport(up.Server)
	g := newGate(t, fmt.Sprintf(`
upstreams:
  keep:  { targets: [%[1]q] }
  tgt:   { targets: [%[1]q], host: target }
  named: { targets: [%[1]q], host: internal.svc }
routes:
  - { name: keep,    match: { path_prefix: /admin }, upstream: keep }
  - { name: strip,   match: { path_prefix: /flow }, upstream: tgt, strip_prefix: true }
  - { name: rewrite, match: { path_prefix: /old }, upstream: named, rewrite: /new/v2 }
  - { name: exact,   match: { path: /health }, upstream: keep, rewrite: /status }
  - name: api
    match: { path_prefix: /api }
    api:
      rewrite: "/{service}/api{rest}"
      services: { kline: keep, flow: tgt }
`, addr))
	tests := []struct {
		name, path, wantURI, wantHost, wantPrefix string
		wantStatus                                int
	}{
		{name: "prefix kept", path: "/admin/users?p=2", wantURI: "/admin/users?p=2", wantHost: hostport(g.srv)},
		{name: "prefix root kept", path: "/admin", wantURI: "/admin"},
		{name: "strip", path: "/flow/board/1", wantURI: "/board/1", wantHost: addr, wantPrefix: "/flow"},
		{name: "strip to root", path: "/flow", wantURI: "/", wantPrefix: "/flow"},
		{name: "rewrite", path: "/old/x?y=1", wantURI: "/new/v2/x?y=1", wantHost: "internal.svc", wantPrefix: "/old"},
		{name: "exact rewrite", path: "/health", wantURI: "/status"},
		{name: "api", path: "/api/kline/v1/ticks?s=BTC", wantURI: "/kline/api/v1/ticks?s=BTC"},
		{name: "api no rest", path: "/api/flow", wantURI: "/flow/api", wantHost: addr},
		{name: "api unknown service", path: "/api/nope/x", wantStatus: 404},
		{name: "api no service", path: "/api/", wantStatus: 404},
		{name: "normalized before routing", path: "/flow/../admin/%2e/x", wantURI: "/admin/x"},
		{name: "escapes kept", path: "/admin/a%20b", wantURI: "/admin/a%20b"},
		{name: "encoded slash refused", path: "/admin/a%2Fb", wantStatus: 400},
		{name: "no route", path: "/nothing", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			resp, _ := g.get(t, tt.path)
			if tt.wantStatus == 0 {
				tt.wantStatus = 200
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				if up.count() != before {
					t.Fatal("refused request reached the upstream")
				}
				return
			}
			got := up.last(t)
			if got.URI != tt.wantURI {
				t.Errorf("upstream URI %q, want %q", got.URI, tt.wantURI)
			}
			if tt.wantHost != "" && got.Host != tt.wantHost {
				t.Errorf("upstream Host %q, want %q", got.Host, tt.wantHost)
			}
			if p := got.Header.Get("X-Forwarded-Prefix"); p != tt.wantPrefix {
				t.Errorf("X-Forwarded-Prefix %q, want %q", p, tt.wantPrefix)
			}
		})
	}
}

func TestHeaderEditsAndSecurityHeaders(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/framed" {
			w.Header().Set("X-Frame-Options", "ALLOW-FROM https://partner.example")
		}
		if r.URL.Path == "/empty" {
			w.Header()["X-Content-Type-Options"] = []string{""}
		}
		w.Header().Set("Server", "next")
		w.Header().Set("X-Powered-By", "Next.js")
		_, _ = io.WriteString(w, "ok")
	})
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - name: edited
    match: { path_prefix: / }
    upstream: app
    request_headers: { set: { X-Env: prod }, add: { X-Tag: b }, remove: [X-Debug] }
    response_headers: { set: { Cache-Control: no-store }, remove: [X-Powered-By, server] }
    security_headers: { Referrer-Policy: "", X-Frame-Options: DENY, Permissions-Policy: "camera=()" }
`, hostport(up.Server)))
	resp, _ := g.get(t, "/x", "X-Env", "dev", "X-Tag", "a", "X-Debug", "1")
	got := up.last(t)
	if got.Header.Get("X-Env") != "prod" || strings.Join(got.Header["X-Tag"], ",") != "a,b" || got.Header.Get("X-Debug") != "" {
		t.Errorf("request edits: %v", got.Header)
	}
	want := map[string]string{
		"Cache-Control":          "no-store",
		"X-Powered-By":           "",
		"Server":                 "",
		"Referrer-Policy":        "",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Permissions-Policy":     "camera=()",
	}
	for k, v := range want {
		if g := resp.Header.Get(k); g != v {
			t.Errorf("response %s = %q, want %q", k, g, v)
		}
	}
	resp, _ = g.get(t, "/framed")
	if v := resp.Header.Get("X-Frame-Options"); v != "ALLOW-FROM https://partner.example" {
		t.Errorf("app's own X-Frame-Options overwritten: %q", v)
	}
	// An empty value is none: the default goes in its place.
	resp, _ = g.get(t, "/empty")
	if v := resp.Header.Values("X-Content-Type-Options"); len(v) != 1 || v[0] != "nosniff" {
		t.Errorf("app's empty X-Content-Type-Options kept: %q", v)
	}
	// Errors carry the security headers too.
	resp, _ = g.get(t, "/a%2fb")
	if resp.StatusCode != 400 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("400 response %d headers %v", resp.StatusCode, resp.Header)
	}
}

func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close() // nothing listens here now: connection refused
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ok := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
server: { max_body_bytes: 1KiB }
upstreams:
  dead: { targets: [%q], connect_timeout: 1s }
  slow: { targets: [%q], response_header_timeout: 100ms }
  slow2: { targets: [%[2]q] }
  ok: { targets: [%[3]q] }
routes:
  - { name: dead, match: { path_prefix: /dead }, upstream: dead }
  - { name: slow, match: { path_prefix: /slow }, upstream: slow }
  - { name: deadline, match: { path_prefix: /deadline }, upstream: slow2, timeout: 100ms }
  - { name: big, match: { path_prefix: /big }, upstream: ok, max_body_bytes: 10 }
`, dead, hostport(slow.Server), hostport(ok.Server)))
	tests := []struct {
		name, method, path, body, accept string
		chunked                          bool
		want                             int
		wantType                         string
	}{
		{name: "refused", path: "/dead", want: 502, wantType: "application/problem+json"},
		{name: "refused browser", path: "/dead", accept: "text/html,*/*", want: 502, wantType: "text/html; charset=utf-8"},
		{name: "response header timeout", path: "/slow", want: 504},
		{name: "route timeout", path: "/deadline", want: 504},
		{name: "body over route limit", method: "POST", path: "/big", body: strings.Repeat("x", 11), want: 413},
		{name: "chunked body over limit", method: "POST", path: "/big", body: strings.Repeat("x", 100), chunked: true, want: 413},
		{name: "no route", path: "/none", want: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = "GET"
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length: chunked encoding
				}
			}
			req, _ := http.NewRequest(m, g.srv.URL+tt.path, body)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, text := g.do(t, req)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, text)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
			if resp.Header.Get("Content-Type") == "application/problem+json" {
				var p problem
				if err := json.Unmarshal([]byte(text), &p); err != nil || p.Status != tt.want || p.RequestID == "" {
					t.Errorf("problem body %q: %v", text, err)
				}
				if strings.Contains(text, dead) {
					t.Errorf("error body leaks the upstream address: %s", text)
				}
			}
		})
	}
}

func TestStaticRedirectRespond(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>home</h1>"), 0o644))
	must(os.MkdirAll(filepath.Join(root, "docs"), 0o755))
	must(os.WriteFile(filepath.Join(root, "docs", "index.html"), []byte("docs"), 0o644))
	must(os.WriteFile(filepath.Join(root, "app.js"), []byte("js"), 0o644))
	outside := t.TempDir()
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644))
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "link")))
	// What a site's folder holds by accident: not served unless asked.
	must(os.WriteFile(filepath.Join(root, ".env"), []byte("DB_PASSWORD=x"), 0o644))
	must(os.MkdirAll(filepath.Join(root, ".git"), 0o755))
	must(os.WriteFile(filepath.Join(root, ".git", "config"), []byte("[remote]"), 0o644))
	must(os.WriteFile(filepath.Join(root, "docs", ".htpasswd"), []byte("u:h"), 0o644))
	must(os.MkdirAll(filepath.Join(root, ".well-known"), 0o755))
	must(os.WriteFile(filepath.Join(root, ".well-known", "security.txt"), []byte("Contact: x"), 0o644))
	// Symlinks inside the root to hidden names: hidden too.
	must(os.Symlink(".git", filepath.Join(root, "gitlink")))
	must(os.Symlink(".env", filepath.Join(root, "envlink")))
	must(os.Symlink("app.js", filepath.Join(root, "jslink")))
	g := newGate(t, fmt.Sprintf(`
routes:
  - { name: spa, match: { path_prefix: /spa }, static: { root: %[1]q, spa: true, strip_prefix: true } }
  - { name: dots, match: { path_prefix: /dots }, static: { root: %[1]q, strip_prefix: true, dotfiles: true } }
  - { name: site, match: { path_prefix: / }, static: { root: %[1]q } }
  - { name: old, match: { path_prefix: /old }, redirect: { to: "https://new.example{uri}", status: 301 } }
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: pong } }
`, root))
	tests := []struct {
		name, method, path string
		want               int
		body, location     string
	}{
		{name: "index", path: "/", want: 200, body: "<h1>home</h1>"},
		{name: "file", path: "/app.js", want: 200, body: "js"},
		{name: "dir redirect", path: "/docs", want: 301, location: "/docs/"},
		{name: "dir index", path: "/docs/", want: 200, body: "docs"},
		{name: "missing", path: "/nope.js", want: 404},
		{name: "symlink out of root", path: "/link", want: 404},
		{name: "traversal", path: "/../../etc/passwd", want: 400},
		{name: "encoded traversal", path: "/%2e%2e/%2e%2e/etc/passwd", want: 400},
		{name: "spa fallback", path: "/spa/some/client/route", want: 200, body: "<h1>home</h1>"},
		{name: "spa real file", path: "/spa/app.js", want: 200, body: "js"},
		{name: "post not allowed", method: "POST", path: "/app.js", want: 405},
		{name: "dotfile", path: "/.env", want: 404},
		{name: "encoded dotfile", path: "/%2eenv", want: 404},
		{name: "file in a dot directory", path: "/.git/config", want: 404},
		{name: "dot directory", path: "/.git/", want: 404},
		{name: "dotfile in a directory", path: "/docs/.htpasswd", want: 404},
		{name: "well-known", path: "/.well-known/security.txt", want: 200, body: "Contact: x"},
		{name: "symlink to a dot directory", path: "/gitlink/config", want: 404},
		{name: "symlink to a dotfile", path: "/envlink", want: 404},
		{name: "symlink to a file", path: "/jslink", want: 200, body: "js"},
		{name: "symlink to a dotfile served when asked", path: "/dots/envlink", want: 200, body: "DB_PASSWORD=x"},
		{name: "spa dotfile is a client route", path: "/spa/.env", want: 200, body: "<h1>home</h1>"},
		{name: "dotfiles served when asked", path: "/dots/.env", want: 200, body: "DB_PASSWORD=x"},
		{name: "dot directory served when asked", path: "/dots/.git/config", want: 200, body: "[remote]"},
		{name: "redirect", path: "/old/a?b=1", want: 301, location: "https://new.example/old/a?b=1"},
		{name: "respond", path: "/ping", want: 200, body: "pong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = "GET"
			}
			req, _ := http.NewRequest(m, g.srv.URL+tt.path, nil)
			req.URL.Opaque = strings.SplitN(tt.path, "?", 2)[0] // send the path as written, dots and all
			c := *g.srv.Client()
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.want, b)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("body %q, want %q", b, tt.body)
			}
			if tt.location != "" && resp.Header.Get("Location") != tt.location {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), tt.location)
			}
		})
	}
}

// panicky is a request filter that panics, standing in for a buggy filter.
type panicky struct{}

func (panicky) FilterRequest(*phase.RequestCtx, http.ResponseWriter, *http.Request) (phase.Outcome, error) {
	panic("boom")
}

// responder is a request filter that answers itself (as auth will).
type responder struct{}

func (responder) FilterRequest(_ *phase.RequestCtx, w http.ResponseWriter, _ *http.Request) (phase.Outcome, error) {
	w.WriteHeader(http.StatusTeapot)
	return phase.Responded, nil
}

// denier is a request filter that fails with an explicit status.
type denier struct{}

func (denier) FilterRequest(rc *phase.RequestCtx, _ http.ResponseWriter, _ *http.Request) (phase.Outcome, error) {
	rc.Auth, rc.AuthReason = "deny", "missing role admin"
	return phase.Continue, &phase.Error{Kind: phase.KindBadRequest, Status: 403, Detail: "denied",
		Header: http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope"`}}}
}

func TestRequestFiltersPlugIn(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: boom, match: { path_prefix: /boom }, upstream: app }
  - { name: teapot, match: { path_prefix: /teapot }, upstream: app }
  - { name: deny, match: { path_prefix: /deny }, upstream: app }
`, hostport(up.Server)))
	for _, r := range g.snap.Routes {
		switch r.Name {
		case "boom":
			r.Filters = []phase.RequestFilter{panicky{}}
		case "teapot":
			r.Filters = []phase.RequestFilter{responder{}}
		case "deny":
			r.Filters = []phase.RequestFilter{denier{}}
		}
	}
	tests := []struct {
		path string
		want int
	}{{"/boom", 500}, {"/teapot", 418}, {"/deny", 403}}
	for _, tt := range tests {
		resp, _ := g.get(t, tt.path)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.want)
		}
		if tt.want == 403 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("403 lost its WWW-Authenticate header")
		}
	}
	if up.count() != 0 {
		t.Errorf("upstream reached %d times", up.count())
	}
	lines := g.logs.lines()
	if n := len(lines); n != len(tests) {
		t.Fatalf("%d access lines for %d requests", n, len(tests))
	}
	if l := lines[2]; l["auth"] != "deny" || l["auth_reason"] != "missing role admin" || l["status"] != float64(403) {
		t.Errorf("decision not in the access line: %v", l)
	}
}

func TestAccessLogOncePerRequest(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: /app }, upstream: app }]
`, hostport(up.Server)))
	paths := []string{"/app/a?token=SECRET", "/nope", "/a%2fb", "/app/../app/b"}
	for _, p := range paths {
		g.get(t, p, "Authorization", "Bearer SECRET", "Cookie", "session=SECRET")
	}
	lines := g.logs.lines()
	if len(lines) != len(paths) {
		t.Fatalf("%d access lines for %d requests", len(lines), len(paths))
	}
	for _, k := range []string{"time", "request_id", "trace_id", "client_ip", "method", "host", "path", "route", "upstream", "status", "bytes", "duration_ms", "upstream_ms", "attempts", "auth", "auth_reason", "ratelimit", "error"} {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("access line lacks %q: %v", k, lines[0])
		}
	}
	if lines[0]["route"] != "app" || lines[0]["path"] != "/app/a" || lines[1]["status"] != float64(404) || lines[3]["path"] != "/app/b" {
		t.Errorf("access lines: %v", lines)
	}
	if strings.Contains(fmt.Sprint(lines), "SECRET") {
		t.Errorf("a secret reached the access log: %v", lines)
	}
}

// The access line's times are read from the clock (the engine's own,
// here the real one): the wait for the upstream's headers is above zero,
// within the request's duration, and that within what the client
// measured around the request.
func TestAccessLogTimesTheRequest(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: /app }, upstream: app }]
`, hostport(up.Server)))
	begin := time.Now()
	g.get(t, "/app/a")
	took := float64(time.Since(begin)) / float64(time.Millisecond)
	lines := g.logs.lines()
	if len(lines) != 1 {
		t.Fatalf("%d access lines for 1 request", len(lines))
	}
	dur, _ := lines[0]["duration_ms"].(float64)
	upst, _ := lines[0]["upstream_ms"].(float64)
	if !(0 < upst && upst <= dur && dur <= took) {
		t.Errorf("upstream_ms %v, duration_ms %v, client's %v ms: want 0 < upstream <= duration <= client's", upst, dur, took)
	}
}

func TestStreamingFlushesEachChunk(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, hostport(up.Server)))
	resp, err := g.srv.Client().Get(g.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	for i := 0; i < 3; i++ {
		// The upstream sends the next event only after we have read this
		// one: a buffering proxy would deadlock here until the timeout.
		n, err := resp.Body.Read(buf)
		if err != nil || string(buf[:n]) != fmt.Sprintf("data: %d\n\n", i) {
			t.Fatalf("event %d: %q %v", i, buf[:n], err)
		}
		next <- struct{}{}
	}
}

func BenchmarkProxyRoundTrip(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 100)))
	}))
	defer up.Close()
	doc, err := config.Parse("b.yaml", []byte(fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: oauth, match: { path_prefix: /oauth }, upstream: app }
  - { name: admin, match: { path_prefix: /admin }, upstream: app }
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`, hostport(up))), ".")
	if err != nil {
		b.Fatal(err)
	}
	snap, _ := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	var h runtime.Holder
	h.Store(snap)
	// Served by net/http, and by h1server as the plain listeners are.
	for _, server := range []string{"net-http", "h1server"} {
		b.Run(server, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(New(Options{Holder: &h, Access: slog.New(slog.NewJSONHandler(io.Discard, nil))}))
			if server == "net-http" {
				srv.Config.ConnContext = ConnContext
				srv.Start()
				defer srv.Close()
			} else {
				serveH1(b, srv.Config, srv.Listener)
			}
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer c.CloseIdleConnections()
			url := "http://" + srv.Listener.Addr().String() + "/flow/board/7"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	// A 1 KiB POST (net/http serves bodies), through the direct attempt,
	// and as before it, through ReverseProxy and http.Transport.
	payload := bytes.Repeat([]byte("p"), 1<<10)
	for _, path := range []string{"direct", "transport"} {
		b.Run("post-1KiB/"+path, func(b *testing.B) {
			e := New(Options{Holder: &h, Access: slog.New(slog.NewJSONHandler(io.Discard, nil))})
			if path == "transport" {
				e.noDirect, e.rp.Transport = true, transportOnly{}
			}
			srv := httptest.NewUnstartedServer(e)
			srv.Config.ConnContext = ConnContext
			srv.Start()
			defer srv.Close()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer c.CloseIdleConnections()
			url := "http://" + srv.Listener.Addr().String() + "/flow/board/7"
			var body bytes.Reader
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(payload)
				resp, err := c.Post(url, "application/octet-stream", &body)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func BenchmarkEngineServeHTTP(b *testing.B) {
	// The engine alone, with an in-memory upstream transport: what the
	// phases cost per request without sockets, with instrumentation off and
	// on (access log to io.Discard, metrics).
	for _, bc := range []struct {
		name            string
		access, metrics bool
	}{{"bare", false, false}, {"access-log", true, false}, {"metrics", false, true}, {"both", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var m *metrics.Metrics
			if bc.metrics {
				m = metrics.New("bench")
			}
			doc, err := config.Parse("b.yaml", []byte(`
upstreams: { app: { targets: ["127.0.0.1:9"] } }
routes:
  - { name: oauth, match: { path_prefix: /oauth }, upstream: app }
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`), ".")
			if err != nil {
				b.Fatal(err)
			}
			snap, _ := compile.Compile(doc, runtime.NewRegistry(m, nil), 1)
			inMemoryUpstreams(snap)
			var h runtime.Holder
			h.Store(snap)
			o := Options{Holder: &h, Metrics: m}
			if bc.access {
				o.Access = slog.New(logging.NewLineHandler(io.Discard, nil))
			}
			e := New(o)
			req := httptest.NewRequest("GET", "http://gate.example/flow/board/7", nil)
			mustProxy(b, e, req)
			b.ReportAllocs()
			for b.Loop() {
				w := discardWriter{h: http.Header{}}
				e.ServeHTTP(&w, req)
			}
		})
	}
}

// cannedConn is an in-memory upstream connection for the synchronous
// client, which writes a whole request head, then reads: every head
// written is answered with cannedResponse.
type cannedConn struct {
	pending int    // heads written, not yet answered
	off     int    // read offset in the answer being read
	resp    []byte // the answer; nil: cannedResponse
}

var cannedResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))

func (c *cannedConn) Write(p []byte) (int, error) {
	c.pending += bytes.Count(p, []byte("\r\n\r\n"))
	return len(p), nil
}

func (c *cannedConn) Read(p []byte) (int, error) {
	if c.off == 0 {
		if c.pending == 0 {
			return 0, io.EOF
		}
		c.pending--
	}
	resp := c.resp
	if resp == nil {
		resp = cannedResponse
	}
	n := copy(p, resp[c.off:])
	c.off = (c.off + n) % len(resp)
	return n, nil
}

func (c *cannedConn) Close() error                     { return nil }
func (c *cannedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *cannedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *cannedConn) SetDeadline(time.Time) error      { return nil }
func (c *cannedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *cannedConn) SetWriteDeadline(time.Time) error { return nil }

// inMemoryUpstreams gives every route's pool in-memory connections
// (cannedConn), so a benchmark measures the engine and the upstream
// client without sockets.
func inMemoryUpstreams(snap *runtime.Snapshot) { inMemoryUpstreamsAnswering(snap, nil) }

// inMemoryUpstreamsAnswering is inMemoryUpstreams with resp as every
// answer (nil: cannedResponse).
func inMemoryUpstreamsAnswering(snap *runtime.Snapshot, resp []byte) {
	for _, r := range snap.Routes {
		if r.Pool == nil {
			continue
		}
		s := r.Pool.Settings
		s.Dial = func(context.Context, string, string) (net.Conn, error) { return &cannedConn{resp: resp}, nil }
		r.Pool = lb.NewPool(r.Pool.Name, r.Pool.Targets(), s, nil)
	}
}

type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

// mustProxy fails a benchmark whose request does not come back as the
// upstream's 100-byte 200: it would measure an error path.
func mustProxy(b *testing.B, e *Engine, req *http.Request) {
	b.Helper()
	w := discardWriter{h: http.Header{}}
	e.ServeHTTP(&w, req.Clone(req.Context()))
	if w.status != http.StatusOK || w.n != 100 {
		b.Fatalf("the benchmark's request got %d with %d bytes, not the upstream's 200", w.status, w.n)
	}
}

// A method that is not a token never reaches an upstream. HTTP/1 servers
// refuse one; Go's HTTP/2 server passes ":method: GET /admin" through, and
// written into a request line it would name another path.
func TestInvalidMethodRefused(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: public, match: { path_prefix: /public }, upstream: app }
`, hostport(up.Server)))
	for _, m := range []string{"GET /admin", "GET\t/admin", "", "G(E)T"} {
		req := httptest.NewRequest("GET", "http://gw.example/public/x", nil)
		req.Method = m
		w := httptest.NewRecorder()
		g.srv.Config.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest {
			t.Errorf("method %q: status %d, want 400", m, w.Code)
		}
	}
	if n := up.count(); n != 0 {
		t.Fatalf("%d requests with an invalid method reached the upstream", n)
	}
}

// adoptingWriter is discardWriter that takes the upstream's header map
// as its own (AdoptHeader), as h1server and h2server do.
type adoptingWriter struct{ discardWriter }

func (a *adoptingWriter) AdoptHeader(h http.Header) bool { a.h = h; return true }

// lendingWriter is discardWriter that lends its header map, while it is
// empty, for the upstream's response to be read into (EmptyHeader), as
// h1server and h2server do.
type lendingWriter struct{ discardWriter }

func (l *lendingWriter) EmptyHeader() http.Header {
	if len(l.h) != 0 {
		return nil
	}
	return l.h
}

// A response header handed to the writer gets the proxy's own fields
// (request id, security headers, a route's edits) in place, with no map
// made for them:
//   - adopted (AdoptHeader): the map the client made is the writer's. Made
//     with room for the proxy's fields, it is allocated once; made for the
//     upstream's fields alone, a map that passes eight entries was copied
//     into a larger one on every response (2 % of the CPU over HTTPS,
//     where HSTS is one more).
//   - lent (EmptyHeader): the upstream's fields are read straight into the
//     writer's own map, and no map is made at all.
func TestHandedOverResponseHeaderCostsNoMapMore(t *testing.T) {
	if raceOn {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	doc, err := config.Parse("b.yaml", []byte(`
upstreams: { app: { targets: ["127.0.0.1:9"] } }
routes:
  - name: flow
    match: { path_prefix: /flow }
    upstream: app
    response_headers: { set: { Cache-Control: no-store } }
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	// Six fields once Connection is gone; the proxy adds five more: a map
	// made for the six is small (up to eight entries), and had to grow.
	inMemoryUpstreamsAnswering(snap, []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n"+
		"Content-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\nETag: \"abc\"\r\n"+
		"Last-Modified: Mon, 07 Dec 2026 04:00:00 GMT\r\n\r\n"+strings.Repeat("x", 100)))
	var h runtime.Holder
	h.Store(snap)
	e := New(Options{Holder: &h})
	req := httptest.NewRequest("GET", "http://gate.example/flow/board/7", nil)
	req = req.WithContext(ConnContextKeepingDeadlines(req.Context(), &cannedConn{}))

	adopting := &adoptingWriter{}
	lending := &lendingWriter{discardWriter{h: make(http.Header, 16)}}
	for _, tc := range []struct {
		name  string
		w     http.ResponseWriter
		d     *discardWriter
		reset func()
		// The request id and its header value (1), the upstream
		// response's text (1) and the rest of it (1), and the map.
		want float64
	}{
		{"adopted", adopting, &adopting.discardWriter, func() { adopting.h = nil }, 7},
		{"lent", lending, &lending.discardWriter, func() { clear(lending.h) }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := func() {
				tc.reset()
				tc.d.status, tc.d.n = 0, 0
				e.ServeHTTP(tc.w, req)
			}
			serve()
			if h := tc.d.h; tc.d.status != http.StatusOK || tc.d.n != 100 || len(h) != 11 || h.Get("Cache-Control") != "no-store" ||
				h.Get("Etag") != `"abc"` || h["Connection"] != nil {
				t.Fatalf("got %d with %d bytes and header %v, not the upstream's 200 with the proxy's fields", tc.d.status, tc.d.n, h)
			}
			if got := testing.AllocsPerRun(200, serve); got > tc.want {
				t.Errorf("a proxied GET allocates %v times, want at most %v", got, tc.want)
			}
		})
	}
}

// TestEngineProxyAllocations pins the allocations of a plain proxied GET
// through the engine and the synchronous upstream client (in-memory
// upstream, as BenchmarkEngineServeHTTP/bare), so they cannot silently
// grow back. Issue 16 asks for fewer than 10 per proxied request,
// h1server's included (TestWholePathAllocations counts them all); this is
// the engine's and the client's share. Lower it when allocations go.
func TestEngineProxyAllocations(t *testing.T) {
	if raceOn {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	doc, err := config.Parse("b.yaml", []byte(`
upstreams: { app: { targets: ["127.0.0.1:9"] } }
routes:
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	inMemoryUpstreams(snap)
	var h runtime.Holder
	h.Store(snap)
	e := New(Options{Holder: &h})
	req := httptest.NewRequest("GET", "http://gate.example/flow/board/7", nil)
	// A connection's state, as on the HTTP/1.x listeners: the peer and
	// the Forwarded element are formatted once per connection.
	req = req.WithContext(ConnContextKeepingDeadlines(req.Context(), &cannedConn{}))
	req.Header.Set("User-Agent", "test")
	req.Header.Set("Accept", "*/*")
	w := discardWriter{h: http.Header{}}
	serve := func() {
		clear(w.h)
		w.status, w.n = 0, 0
		e.ServeHTTP(&w, req)
	}
	serve()
	if w.status != http.StatusOK || w.n != 100 {
		t.Fatalf("got %d with %d bytes, not the upstream's 200", w.status, w.n)
	}
	// The request id and its header value (1), the upstream response's
	// text (1), header map (2), and the rest of it (1). (The outbound
	// request is pooled with its parts: outbound.)
	const want = 5
	if got := testing.AllocsPerRun(200, serve); got > want {
		t.Errorf("a proxied GET allocates %v times, want at most %d", got, want)
	}
	// The HTTP/2 servers give a request that ended with its HEADERS an
	// empty body of length 0, not NoBody: nothing to buffer for a retry
	// (that was four allocations more: the buffer, its reader, the replay
	// body and a MaxBytesReader).
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader("")), 0
	if got := testing.AllocsPerRun(200, serve); got > want {
		t.Errorf("a proxied GET with an empty body of length 0 allocates %v times, want at most %d", got, want)
	}
}

// per_try_timeout covers the wait for response headers, not the client's
// upload: a body sent slowly, in pieces over several times the limit, to
// an upstream that answers once it has it all, gets the answer (it got
// 504, and five such uploads ejected the healthy target), on the
// direct path and through the Transport, with a length and chunked. An
// upstream that has the whole body and then stalls still gets 504 at the
// limit.
func TestPerTryTimeoutWaitsForTheBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/stall") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprintf(w, "%d", n)
	}))
	t.Cleanup(up.Close)
	for _, noDirect := range []bool{false, true} {
		g := newGate(t, fmt.Sprintf(`
upstreams:
  app:
    targets: [%q]
    retries: { attempts: 2, per_try_timeout: 150ms, buffer_body: 0 }
    health: { passive: { consecutive_failures: 1 } }
routes:
  - { name: all, match: { path_prefix: / }, upstream: app }
`, hostport(up)))
		g.srv.Config.Handler.(*Engine).noDirect = noDirect
		for _, chunked := range []bool{false, true} {
			name := fmt.Sprintf("noDirect=%v chunked=%v", noDirect, chunked)
			for i := 0; i < 2; i++ { // a second time: the target was not ejected
				pr, pw := io.Pipe()
				go func() {
					for j := 0; j < 4; j++ {
						time.Sleep(100 * time.Millisecond)
						_, _ = pw.Write(bytes.Repeat([]byte("x"), 1000))
					}
					pw.Close()
				}()
				req, _ := http.NewRequest("POST", g.srv.URL+"/upload", pr)
				if !chunked {
					req.ContentLength = 4000
				}
				resp, body := g.do(t, req)
				if resp.StatusCode != 200 || body != "4000" {
					t.Fatalf("%s: slow upload: %d %q, want 200 \"4000\"", name, resp.StatusCode, body)
				}
			}
		}
		req, _ := http.NewRequest("POST", g.srv.URL+"/stall", strings.NewReader("body"))
		start := time.Now()
		if resp, body := g.do(t, req); resp.StatusCode != 504 {
			t.Fatalf("noDirect=%v: a stall after the body: %d %q, want 504", noDirect, resp.StatusCode, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("noDirect=%v: the stall was answered after %v", noDirect, d)
		}
	}
}

// Once the client's body has ended, the wait for response headers gets
// the whole per_try_timeout from that moment (perTry.bodyEnded): an
// upload that ended early in the attempt does not eat into the
// upstream's time to answer. Here the body ends at 0.3 of the limit and
// the upstream answers 0.85 of the limit later; counted from the
// attempt's start the limit would run out first (504).
func TestPerTryTimeoutCountsFromTheBodysEnd(t *testing.T) {
	t.Parallel()
	const limit = 2 * time.Second
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(limit * 85 / 100):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "%d", n)
	}))
	t.Cleanup(up.Close)
	for _, noDirect := range []bool{false, true} {
		g := newGate(t, fmt.Sprintf(`
upstreams:
  app:
    targets: [%q]
    retries: { attempts: 1, per_try_timeout: %s, buffer_body: 0 }
routes:
  - { name: all, match: { path_prefix: / }, upstream: app }
`, hostport(up), limit))
		g.srv.Config.Handler.(*Engine).noDirect = noDirect
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write([]byte("first"))
			time.Sleep(limit * 3 / 10)
			_, _ = pw.Write([]byte("-last"))
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", g.srv.URL+"/upload", pr)
		if resp, body := g.do(t, req); resp.StatusCode != 200 || body != "10" {
			t.Errorf("noDirect=%v: %d %q, want 200 \"10\"", noDirect, resp.StatusCode, body)
		}
	}
}

// Request ids are unique, of one length, and say nothing about how many
// requests an instance serves: they were a sequence ("…-1t", then 38
// requests later "…-2v"), which every client could read from its own.
func TestRequestIDsAreNotASequence(t *testing.T) {
	t.Parallel()
	e := New(Options{Holder: new(runtime.Holder)})
	seen := map[string]bool{}
	rises := 0
	prev := ""
	for i := 0; i < 1000; i++ {
		id := e.newRequestID()[0]
		prefix, suffix, _ := strings.Cut(id, "-")
		if seen[id] || len(suffix) != 13 || prefix != e.ridPrefix {
			t.Fatalf("id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
		if suffix > prev {
			rises++
		}
		prev = suffix
	}
	if rises < 400 || rises > 600 {
		t.Errorf("%d of 1000 ids were above the one before: a sequence, not random", rises)
	}
}

// per_try_timeout still bounds an upstream that stops taking a streamed
// upload: the body writer then waits on the upstream, not on the client,
// and the attempt is cut (504), on the direct path and through the
// Transport. Starting the timer only at the body's end had taken that
// bound away (found on review).
func TestPerTryTimeoutCutsAnUpstreamThatStopsReading(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // reads nothing of the body
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) }) // first: Close waits for the handlers
	for _, noDirect := range []bool{false, true} {
		g := newGate(t, fmt.Sprintf(`
upstreams:
  app:
    targets: [%q]
    retries: { attempts: 1, per_try_timeout: 150ms }
routes:
  - { name: all, match: { path_prefix: / }, upstream: app }
`, hostport(up)))
		g.srv.Config.Handler.(*Engine).noDirect = noDirect
		c, err := net.Dial("tcp", g.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not a wait
		const size = 64 << 20                               // far past the socket buffers
		go func() {
			fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for i := 0; i < size>>20; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("noDirect=%v: %v %v, want 504", noDirect, resp, err)
		}
	}
}
