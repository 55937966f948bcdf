package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/runtime"
	"gatehouse/internal/testutil"
	"gatehouse/internal/testutil/fakeidp"
)

// TestRequestTargetPolicy sends request targets an attacker would write
// by hand (issue 14) to both HTTP/1.1 servers the engine runs behind:
// what cannot be routed safely is 400, and never reaches the upstream.
func TestRequestTargetPolicy(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	cfg := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
  - { name: admin, match: { path_prefix: /admin }, upstream: app }
  - { name: static, match: { path_prefix: /static }, upstream: app }
  - { name: java, match: { path_prefix: /java }, upstream: app, allow_path_params: true }
`, hostport(up.Server))
	tests := []struct {
		name, target string
		want         int
		wantURI      string // what the upstream saw; default target
	}{
		{name: "plain", target: "/admin/x", want: 200},
		{name: "absolute form", target: "http://x/admin/x", want: 200, wantURI: "/admin/x"},
		{name: "absolute form with userinfo", target: "http://user:pw@x/admin/x", want: 400},
		{name: "absolute form with an empty host", target: "http:///admin/x", want: 400},
		{name: "fragment", target: "/admin#x", want: 400},
		{name: "fragment in query", target: "/admin?a=1#x", want: 400},
		{name: "encoded hash passes", target: "/a%23b", want: 200},
		{name: "utf8", target: "/caf%C3%A9", want: 200},
		{name: "truncated utf8", target: "/caf%C3", want: 400},
		{name: "latin1", target: "/caf%E9", want: 400},
		{name: "overlong slash", target: "/a%C0%AFb", want: 400},
		{name: "encoded nul", target: "/a%00b", want: 400},
		{name: "encoded delete", target: "/a%7Fb", want: 400},
		{name: "encoded newline", target: "/a%0Ab", want: 400},
		{name: "raw delete", target: "/a\x7fb", want: 400},
		{name: "dot-dot parameters", target: "/static/..;/admin/x", want: 400},
		{name: "parameters hide a prefix", target: "/admin;x/secret", want: 400},
		{name: "encoded parameters", target: "/admin%3Bx/secret", want: 400},
		{name: "parameters on a route without opt-in", target: "/static/a;v=1", want: 400},
		{name: "parameters on an opted-in route", target: "/java;jsessionid=1/page", want: 200},
		{name: "parameters after an opted-in prefix", target: "/java/;jsessionid=1", want: 200},
		{name: "dot-dot parameters on an opted-in route", target: "/java/..;/admin", want: 400},
		{name: "opted-in prefix only with parameters", target: "/javax;y/secret", want: 400},
	}
	for _, srv := range bothH1Servers {
		t.Run(srv.name, func(t *testing.T) {
			g := srv.new(t, cfg)
			addr := g.srv.Listener.Addr().String()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := up.count()
					v := rawExchange(t, addr, "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					if !strings.HasPrefix(v.Status, fmt.Sprint(tt.want)) {
						t.Fatalf("GET %q: %q %s, want %d", tt.target, v.Status, v.Err, tt.want)
					}
					if tt.want != 200 {
						if up.count() != before {
							t.Fatalf("GET %q: refused request reached the upstream", tt.target)
						}
						return
					}
					want := tt.wantURI
					if want == "" {
						want = tt.target
					}
					if got := up.last(t).URI; got != want {
						t.Errorf("GET %q: upstream saw %q, want %q", tt.target, got, want)
					}
				})
			}
		})
	}
}

// answerWithoutBody sends a request head announcing a body, and only part
// of the body, then reads the response. It returns the status line, and
// fails unless the head arrives within headWithin and the server closes
// the connection within closeWithin of it.
func answerWithoutBody(t *testing.T, addr, head, part string, headWithin, closeWithin time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head+part); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(headWithin))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response head within %v: %v", headWithin, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = c.SetReadDeadline(time.Now().Add(closeWithin))
	if _, err := io.Copy(io.Discard, br); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: connection still open %v after the response", resp.Status, closeWithin)
	}
	if !resp.Close {
		t.Errorf("%s: response does not say Connection: close", resp.Status)
	}
	return resp.Status
}

// TestAnswerWithoutBodyClosesAtOnce: a response the engine writes
// without reading the request body (404, 401, 429, a fixed response, a
// 502 from a refused upstream) reaches the client at once and the
// connection is closed after it, however much of the announced body is
// still to come (issue 14: net/http read up to 256 KiB of it first, with
// no deadline). The upstream never sees these requests.
func TestAnswerWithoutBodyClosesAtOnce(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	up := newRecorder(t, nil)
	refused := testutil.FreePort(t)
	cfg := fmt.Sprintf(`
auth: { issuers: { main: { issuer: %q, audience: gatehouse } } }
rate_limits: { one: { key: client_ip, rate: 1/h, burst: 1 } }
upstreams:
  app: { targets: [%q] }
  gone: { targets: [%q], retries: { attempts: 1 } }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app }
  - { name: limited, match: { path_prefix: /limited }, upstream: app, rate_limits: [one] }
  - { name: authed, match: { path_prefix: /authed }, upstream: app, auth: {} }
  - { name: fixed, match: { path_prefix: /fixed }, respond: { status: 403, body: "no" } }
  - { name: gone, match: { path_prefix: /gone }, upstream: gone }
`, idp.Issuer, hostport(up.Server), refused)
	bodies := []struct{ name, header, part string }{
		{"large", "Content-Length: 10000000\r\n", strings.Repeat("x", 1000)},
		{"under 256KiB", "Content-Length: 100000\r\n", strings.Repeat("x", 1000)},
		{"chunked", "Transfer-Encoding: chunked\r\n", "3e8\r\n" + strings.Repeat("x", 1000) + "\r\n"},
	}
	paths := []struct{ path, want string }{
		{"/nothing", "404"},
		{"/limited", "429"},
		{"/authed", "401"},
		{"/fixed", "403"},
		{"/gone", "502"},
	}
	for _, srv := range bothH1Servers {
		t.Run(srv.name, func(t *testing.T) {
			g := srv.new(t, cfg)
			addr := g.srv.Listener.Addr().String()
			// The limit's one request.
			v := rawExchange(t, addr, "GET /limited HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(v.Status, "200") {
				t.Fatalf("first request: %q", v.Status)
			}
			for _, b := range bodies {
				for _, p := range paths {
					t.Run(b.name+p.path, func(t *testing.T) {
						before := up.count()
						head := "POST " + p.path + " HTTP/1.1\r\nHost: x\r\n" + b.header + "\r\n"
						status := answerWithoutBody(t, addr, head, b.part, 5*time.Second, 5*time.Second)
						if !strings.HasPrefix(status, p.want) {
							t.Errorf("status %q, want %s", status, p.want)
						}
						if up.count() != before {
							t.Errorf("the upstream received the request")
						}
					})
				}
			}
			// A body read to its end keeps the connection.
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := 0; i < 2; i++ {
				_, _ = io.WriteString(c, "POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d on one connection: %v", i, err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != 200 || resp.Close {
					t.Fatalf("request %d: %s, close %v", i, resp.Status, resp.Close)
				}
			}
		})
	}
}

// optionsGate serves yaml with the engine options o (Holder and Access
// are filled in) behind net/http, or behind h1server in front of it as
// internal/app serves plain listeners. It returns the address and the
// access log.
func optionsGate(t *testing.T, yaml string, o Options, fast bool) (string, *syncBuffer) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	g := startGate(t, srv, yaml, false)
	logs := &syncBuffer{}
	var h runtime.Holder
	h.Store(g.snap)
	o.Holder, o.Access = &h, slog.New(slog.NewJSONHandler(logs, nil))
	srv.Config.Handler = New(o)
	if !fast {
		srv.Start()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String(), logs
	}
	serveH1(t, srv.Config, srv.Listener)
	return srv.Listener.Addr().String(), logs
}

// TestStalledBodyIsAnsweredNotAcknowledged: a request body that stalls
// past body_read_timeout is answered 408, and one still arriving at the
// route timeout 504, with Connection: close, on both HTTP/1.1 servers,
// whether the body is buffered for retries or streamed to the upstream
// (chunked, or longer than retries.buffer_body). Regression: a streamed
// body's stall reached the engine as "context canceled", was taken for
// a client that had left, and the server's own empty 200 went out: the
// client was told its POST had succeeded.
func TestStalledBodyIsAnsweredNotAcknowledged(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	cfg := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
  - { name: timed, match: { path_prefix: /timed }, upstream: app, timeout: 300ms }
`, hostport(up.Server))
	bodies := []struct{ name, head, part string }{
		{"buffered", "Content-Length: 1000\r\n", "0123456789"},
		{"streamed, length", "Content-Length: 100000\r\n", "0123456789"},
		{"streamed, chunked", "Transfer-Encoding: chunked\r\n", "a\r\n0123456789\r\n"},
	}
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprint("fast_http1=", fast), func(t *testing.T) {
			t.Parallel()
			// The route's timeout comes before the body's on /timed.
			addr, logs := optionsGate(t, cfg, Options{BodyReadTimeout: 800 * time.Millisecond, WriteTimeout: time.Minute}, fast)
			for _, b := range bodies {
				for _, c := range []struct{ path, want string }{{"/stall", "408"}, {"/timed", "504"}} {
					t.Run(b.name+" "+c.path, func(t *testing.T) {
						head := "POST " + c.path + " HTTP/1.1\r\nHost: x\r\n" + b.head + "\r\n"
						status := answerWithoutBody(t, addr, head, b.part, 10*time.Second, 5*time.Second)
						if !strings.HasPrefix(status, c.want) {
							t.Errorf("a %s body stalled on %s: %q, want %s\n%s", b.name, c.path, status, c.want, logs.lines())
						}
					})
				}
			}
		})
	}
}

// TestRouteTimeoutBoundsTheClient: a route's timeout bounds the whole
// exchange, the client's side included (issue 14): a body sent slowly is
// cut at the route timeout, not at body_read_timeout, and a response read
// slowly at the route timeout, not at write_timeout. The next request on
// the connection is not held to the last one's deadline.
func TestRouteTimeoutBoundsTheClient(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/timed/big":
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/late":
			// Answers once the route timeout of the request before it on
			// the connection (a /timed one) has passed.
			dl, _ := time.Parse(time.RFC3339Nano, r.URL.Query().Get("after"))
			<-time.After(time.Until(dl))
		}
		_, _ = io.WriteString(w, "ok")
	})
	const timeout = 300 * time.Millisecond
	cfg := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
  - { name: timed, match: { path_prefix: /timed }, upstream: app, timeout: %s }
`, hostport(up.Server), timeout)
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprint("fast_http1=", fast), func(t *testing.T) {
			t.Parallel()
			t.Run("slow body", func(t *testing.T) {
				addr, logs := optionsGate(t, cfg, Options{BodyReadTimeout: time.Minute, WriteTimeout: time.Minute}, fast)
				defer func() {
					if t.Failed() {
						t.Log(logs.lines())
					}
				}()
				start := time.Now()
				status := answerWithoutBody(t, addr, "POST /timed HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", "0123456789",
					10*time.Second, 5*time.Second)
				if took := time.Since(start); took > 10*timeout || !strings.HasPrefix(status, "504") {
					t.Fatalf("a body stalled on a %v route: %q after %v", timeout, status, took)
				}
			})
			t.Run("slow reader", func(t *testing.T) {
				addr, logs := optionsGate(t, cfg, Options{BodyReadTimeout: time.Minute, WriteTimeout: time.Minute}, fast)
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				start := time.Now()
				_, _ = io.WriteString(c, "GET /timed/big HTTP/1.1\r\nHost: x\r\n\r\n")
				// The client never reads: the request ends (its access line)
				// when the write blocked on it fails.
				if !testutil.WaitFor(10*time.Second, func() bool { return len(logs.lines()) > 0 }) {
					t.Fatalf("a client that stopped reading on a %v route still held its request after 10s", timeout)
				}
				if took := time.Since(start); took > 10*timeout {
					t.Fatalf("a client that stopped reading on a %v route was cut after %v", timeout, took)
				}
			})
			t.Run("next request", func(t *testing.T) {
				addr, _ := optionsGate(t, cfg, Options{}, fast) // no write_timeout: only the route's deadline
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				after := time.Now().Add(timeout).Format(time.RFC3339Nano)
				for _, target := range []string{"/timed", "/late?after=" + url.QueryEscape(after)} {
					_, _ = io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("GET %s after a request with a route timeout: %v", target, err)
					}
					b, err := io.ReadAll(resp.Body)
					if resp.StatusCode != 200 || string(b) != "ok" || err != nil {
						t.Fatalf("GET %s: %s %q %v", target, resp.Status, b, err)
					}
				}
			})
		})
	}
}

// TestBodyLimitAnswersAndCloses: a body over the route's max_body_bytes
// is answered 413 and the connection closed after it, at once, on both
// HTTP/1.1 servers: a declared length over the limit before any of the
// body is read, a chunked body once the limit is passed (the engine's
// http.MaxBytesReader sits on the respWriter, not on the server's
// ResponseWriter, so neither server sees the limit itself: the engine's
// "Connection: close" ends the connection). The client keeps sending:
// nothing waits for the rest.
//
// A chunked body streams: its head and up to the limit may have reached
// the upstream when the limit is passed, as a request whose body then
// breaks off; never more than the limit. (Each server has its own
// upstream: the upstream records that broken request when its read
// fails, which may be after the client has its 413 and has gone on.)
func TestBodyLimitAnswersAndCloses(t *testing.T) {
	t.Parallel()
	const limit = 100
	for _, srv := range bothH1Servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			up := newRecorder(t, nil)
			g := srv.new(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: small, match: { path_prefix: /small }, upstream: app, max_body_bytes: %d }
`, hostport(up.Server), limit))
			addr := g.srv.Listener.Addr().String()
			for _, b := range []struct{ name, header, part string }{
				{"declared", "Content-Length: 1000\r\n", strings.Repeat("x", 500)},
				{"declared over 256KiB", "Content-Length: 10000000\r\n", strings.Repeat("x", 500)},
				{"chunked", "Transfer-Encoding: chunked\r\n", "1f4\r\n" + strings.Repeat("x", 500) + "\r\n"},
			} {
				t.Run(b.name, func(t *testing.T) {
					status := answerWithoutBody(t, addr, "POST /small HTTP/1.1\r\nHost: x\r\n"+b.header+"\r\n", b.part,
						5*time.Second, 5*time.Second)
					if !strings.HasPrefix(status, "413") {
						t.Errorf("status %q, want 413", status)
					}
				})
			}
			// Under the limit, the connection goes on (a chunked request
			// would end it here: these gates have no h1guard, see
			// framingChecks).
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			for i, req := range []string{
				"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
				"PUT /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
			} {
				_, _ = io.WriteString(c, req)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != 200 || resp.Close {
					t.Fatalf("request %d: %s, close %v", i, resp.Status, resp.Close)
				}
			}
			up.mu.Lock()
			defer up.mu.Unlock()
			var put *seen
			for i, r := range up.reqs {
				if len(r.Body) > limit {
					t.Errorf("upstream got a %s body of %d bytes, over the %d-byte limit", r.Method, len(r.Body), limit)
				}
				if r.Method == http.MethodPut {
					put = &up.reqs[i]
				}
			}
			if put == nil || put.Body != "hello" {
				t.Fatalf("upstream got the PUT under the limit as %+v", put)
			}
		})
	}
}

// TestClientGoneGetsNoResponse: a request the engine takes for one whose
// client has left (its context cancelled before an answer) ends with
// http.ErrAbortHandler and nothing written, so the server closes the
// connection rather than completing the response with its own empty 200:
// were the judgement wrong and the client still there, it must not read
// a success. The access line says 499.
func TestClientGoneGetsNoResponse(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, oneRoute(hostport(up.Server)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("POST", "http://gw.example/x", strings.NewReader("body")).WithContext(ctx)
	w := httptest.NewRecorder()
	p := func() (p any) {
		defer func() { p = recover() }()
		g.srv.Config.Handler.ServeHTTP(w, req)
		return nil
	}()
	if p != http.ErrAbortHandler { //nolint:errorlint // the panic value itself, as net/http compares it
		t.Fatalf("handler ended with %v, want a panic with http.ErrAbortHandler", p)
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Fatalf("a response was begun for a client taken as gone: %v %q", w.Header(), w.Body)
	}
	if lines := g.logs.lines(); len(lines) != 1 || lines[0]["status"] != float64(499) {
		t.Fatalf("access log: %v, want one line with status 499", lines)
	}
}

// TestRouteConditionsDoNotLeakPastAuth: what apps treat as the same
// request as one a protected route takes must not fall past that route to
// a public one for the same app (found by attacking from outside): HEAD
// where the route names GET (apps answer HEAD with their GET handler), a
// method in lower case (some apps compare methods without case), and an
// exact path with a trailing slash (apps serve /x/ as /x), on both
// HTTP/1.1 servers.
func TestRouteConditionsDoNotLeakPastAuth(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	up := newRecorder(t, nil)
	cfg := fmt.Sprintf(`
auth:
  issuers:
    main: { issuer: %q, audience: gatehouse }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: public, match: { path_prefix: / }, upstream: app }
  - name: reports
    match: { path_prefix: /reports, methods: [GET] }
    upstream: app
    auth: { mode: required }
  - name: settings
    match: { path: /account/settings }
    upstream: app
    auth: { mode: required }
`, idp.Issuer, hostport(up.Server))
	tests := []struct {
		name, line string
		want       int
	}{
		{"public", "GET /account/other HTTP/1.1", 200},
		{"GET", "GET /reports/q3 HTTP/1.1", 401},
		{"HEAD where the route names GET", "HEAD /reports/q3 HTTP/1.1", 401},
		{"lower-case method", "get /reports/q3 HTTP/1.1", 400},
		{"mixed-case method", "Get /reports/q3 HTTP/1.1", 400},
		{"exact path", "GET /account/settings HTTP/1.1", 401},
		{"exact path with a trailing slash", "GET /account/settings/ HTTP/1.1", 401},
		{"exact path, dot segment", "GET /account/settings/. HTTP/1.1", 401},
		{"exact path, doubled slashes", "GET /account//settings/ HTTP/1.1", 401},
	}
	for _, srv := range bothH1Servers {
		t.Run(srv.name, func(t *testing.T) {
			g := srv.new(t, cfg)
			addr := g.srv.Listener.Addr().String()
			for _, tt := range tests {
				before := up.count()
				v := rawExchange(t, addr, tt.line+"\r\nHost: x\r\nConnection: close\r\n\r\n")
				if !strings.HasPrefix(v.Status, fmt.Sprint(tt.want)) {
					t.Errorf("%s: %q: %q %s, want %d", tt.name, tt.line, v.Status, v.Err, tt.want)
				}
				if reached := up.count() != before; reached != (tt.want == 200) {
					t.Errorf("%s: %q: reached the upstream: %v", tt.name, tt.line, reached)
				}
			}
		})
	}
}

// An exact path takes itself with a trailing slash added or taken away,
// and a rewrite or strip_prefix of it sends what it sends for the path
// as written: a path one byte shorter than the route's was cut past its
// end (a panic, answered 500).
func TestExactPathTakesItsSlashVariant(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newH1Gate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: old, match: { path: /old/ }, upstream: app, rewrite: /new }
  - { name: s, match: { path: /s }, upstream: app, strip_prefix: true }
`, hostport(up.Server)))
	addr := g.srv.Listener.Addr().String()
	for target, want := range map[string]string{"/old/": "/new", "/old": "/new", "/s": "/", "/s/": "/"} {
		v := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(v.Status, "200") {
			t.Errorf("GET %s: %q %s", target, v.Status, v.Err)
			continue
		}
		if got := up.last(t).URI; got != want {
			t.Errorf("GET %s: upstream saw %q, want %q", target, got, want)
		}
	}
}

// A redirect that adds the trailing slash (nginx's "location = /admin {
// return 301 /admin/; }") takes no slash twin: /admin/ goes to the admin
// app, not to the redirect again (found on review: it looped).
func TestExactRedirectToSlashDoesNotLoop(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newH1Gate(t, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: admin-slash, match: { path: /admin }, redirect: { to: /admin/, status: 301 } }
  - { name: admin, match: { path_prefix: /admin }, upstream: app }
  - { name: home, match: { path: /home/ }, redirect: { to: /home, status: 301 } }
  - { name: all, match: { path_prefix: / }, upstream: app }
`, hostport(up.Server)))
	addr := g.srv.Listener.Addr().String()
	for target, want := range map[string]string{"/admin": "301", "/admin/": "200", "/home/": "301", "/home": "200"} {
		v := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(v.Status, want) {
			t.Errorf("GET %s: %q (Location %q), want %s", target, v.Status, v.Header.Get("Location"), want)
		}
	}
}
