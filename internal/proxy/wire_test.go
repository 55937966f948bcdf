// What crosses each hop: the fields an upstream keeps for itself, the
// authority and target of an HTTP/2 request, and Forwarded without a Host.

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cannedUpstream answers every request on a connection with the raw
// response resps names by the request's path, then closes the
// connection (every canned response says Connection: close).
func cannedUpstream(t *testing.T, resps map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				// Answered before the body: with Expect: 100-continue the
				// body never comes, and a final response may come first.
				_, _ = io.WriteString(c, resps[req.URL.Path])
			}()
		}
	}()
	return ln.Addr().String()
}

// exchange writes raw on a new connection to addr and reads the
// responses to it: the informational ones, then the final one with its
// body read. It fails the test unless the final one is a 200 with body
// want.
func exchange(t *testing.T, addr, raw, want string, logs *syncBuffer) (heads []http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: reading the response: %v\n%v", raw, err, logs.lines())
		}
		heads = append(heads, resp.Header)
		if resp.StatusCode < 200 {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want || err != nil {
			t.Fatalf("%q: %s %q %v, want 200 %q\n%v", raw, resp.Status, b, err, want, logs.lines())
		}
		return heads
	}
}

// TestHopByHopNamedBesideCloseStayUpstream: the fields an upstream's
// Connection field names are the proxy's alone (RFC 9110 §7.6.1), also
// when the same field, or another Connection line, says "close".
// Regression: http.ReadResponse deletes a Connection field that says
// "close", names and all, so the fields it named reached the client (an
// internal token, a cookie) on every path that read a response with it:
// chunked responses, two Connection lines, and requests with Expect:
// 100-continue, which go through http.Transport. Both HTTP/1.1 servers.
func TestHopByHopNamedBesideCloseStayUpstream(t *testing.T) {
	t.Parallel()
	up := cannedUpstream(t, map[string]string{
		"/length":  "HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: secret\r\nContent-Length: 2\r\n\r\nok",
		"/chunked": "HTTP/1.1 200 OK\r\nConnection: X-Internal, close\r\nX-Internal: secret\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/lines":   "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nConnection: close\r\nX-Internal: secret\r\nContent-Length: 2\r\n\r\nok",
		"/1xx":     "HTTP/1.1 103 Early Hints\r\nConnection: close, X-Internal\r\nX-Internal: secret\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: secret\r\nContent-Length: 2\r\n\r\nok",
	})
	cfg := oneRoute(up)
	requests := []struct{ name, req string }{
		{"length", "GET /length HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"chunked", "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"two lines", "GET /lines HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"informational", "GET /1xx HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"expect, length", "POST /length HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd"},
		{"expect, chunked", "POST /chunked HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd"},
		{"expect, two lines", "POST /lines HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd"},
	}
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprint("fast_http1=", fast), func(t *testing.T) {
			t.Parallel()
			addr, logs := optionsGate(t, cfg, Options{}, fast)
			for _, r := range requests {
				t.Run(r.name, func(t *testing.T) {
					for _, h := range exchange(t, addr, r.req, "ok", logs) {
						if v := h["X-Internal"]; v != nil {
							t.Errorf("a field the upstream's Connection named reached the client: X-Internal: %q", v)
						}
					}
				})
			}
		})
	}
}

// TestHopByHopResponseFieldsStayUpstream: an upstream response's
// hop-by-hop fields (RFC 9110 §7.6.1) and those its Connection names
// never reach the client, whether the response is read into the client
// writer's own map (h1server lends it; lb leaves them out) or into one
// of its own (net/http's server; the engine removes them).
func TestHopByHopResponseFieldsStayUpstream(t *testing.T) {
	t.Parallel()
	up := cannedUpstream(t, map[string]string{
		"/nginx": "HTTP/1.1 200 OK\r\nServer: nginx\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok",
		"/hops":  "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nTe: trailers\r\nProxy-Connection: keep-alive\r\nProxy-Authenticate: Basic\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok",
		"/named": "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok",
	})
	cfg := oneRoute(up)
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprint("fast_http1=", fast), func(t *testing.T) {
			t.Parallel()
			addr, logs := optionsGate(t, cfg, Options{}, fast)
			for _, path := range []string{"/nginx", "/hops", "/named"} {
				heads := exchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", "ok", logs)
				h := heads[len(heads)-1]
				for _, k := range []string{"Keep-Alive", "Upgrade", "Te", "Proxy-Connection", "Proxy-Authenticate", "X-Internal"} {
					if v := h[k]; v != nil {
						t.Errorf("%s: %s: %q reached the client", path, k, v)
					}
				}
				if h.Get("X-App") != "1" {
					t.Errorf("%s: the upstream's own field X-App is missing: %v", path, h)
				}
			}
		})
	}
}

// TestMalformedHTTP2RequestsRefused: an HTTP/2 request without an
// authority (neither :authority nor Host), or with a :path not in origin
// form, is malformed (RFC 9113 §8.3.1) and never reaches an upstream.
// h2server resets such streams; net/http's HTTP/2 server (h2c, and
// fast_http2: false) hands them to the engine, an absolute :path as a
// URL with a host of its own.
func TestMalformedHTTP2RequestsRefused(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, oneRoute(hostport(up.Server)))
	for _, c := range []struct{ name, host, target string }{
		{"no authority", "", "/x"},
		{"absolute :path", "gw.example", "http://evil.example/x"},
	} {
		req := httptest.NewRequest("GET", "http://gw.example/x", nil)
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		req.Host, req.RequestURI = c.host, c.target
		w := httptest.NewRecorder()
		g.srv.Config.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", c.name, w.Code)
		}
	}
	if n := up.count(); n != 0 {
		t.Fatalf("%d malformed HTTP/2 requests reached the upstream", n)
	}
}

// TestForwardedWithoutHost: an HTTP/1.0 request may come without Host.
// The upstream then gets no X-Forwarded-Host and a Forwarded element
// without host= (an empty value is not RFC 7239 syntax), on both
// HTTP/1.1 servers.
func TestForwardedWithoutHost(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	cfg := oneRoute(hostport(up.Server))
	for _, fast := range []bool{false, true} {
		addr, logs := optionsGate(t, cfg, Options{}, fast)
		exchange(t, addr, "GET /x HTTP/1.0\r\n\r\n", "ok", logs)
		got := up.last(t)
		if v, ok := got.Header["X-Forwarded-Host"]; ok {
			t.Errorf("fast_http1=%v: X-Forwarded-Host: %q sent for a request without Host", fast, v)
		}
		if f := got.Header.Get("Forwarded"); f != "for=127.0.0.1;proto=http" {
			t.Errorf("fast_http1=%v: Forwarded: %q, want for=127.0.0.1;proto=http", fast, f)
		}
	}
}

// TestSubDelimsReachTheUpstreamRaw: the sub-delimiters url.URL would
// percent-encode in a path (! ' ( ) *) reach the upstream as the client
// sent them, on both HTTP/1.1 servers, on the synchronous client and on
// the Transport (a request with Expect takes it): an encoded reserved
// character is a different URI (RFC 3986 §2.2), "f(1).png" not
// "f%281%29.png". Escapes the client sent stay escapes.
func TestSubDelimsReachTheUpstreamRaw(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	cfg := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
  - { name: java, match: { path_prefix: /java }, upstream: app, allow_path_params: true }
`, hostport(up.Server))
	for _, fast := range []bool{false, true} {
		addr, logs := optionsGate(t, cfg, Options{}, fast)
		for _, target := range []string{"/a!$&'()*+,=:@b", "/f(1).png", "/java;a=b*c/x", "/x%28y)"} {
			for _, expect := range []string{"", "Expect: 100-continue\r\nContent-Length: 1\r\n"} {
				method, body := "GET", ""
				if expect != "" {
					method, body = "POST", "x"
				}
				exchange(t, addr, method+" "+target+" HTTP/1.1\r\nHost: x\r\n"+expect+"\r\n"+body, "ok", logs)
				if got := up.last(t).URI; got != target {
					t.Errorf("fast_http1=%v %s %s: the upstream got %s", fast, method, target, got)
				}
			}
		}
	}
}

// TestForbiddenTrailersStayUpstream: trailer fields no sender may send
// (RFC 9110 §6.5.1: framing, routing, authentication, content metadata)
// never reach the client, declared or not, on both HTTP/1.1 servers, on
// the synchronous client and on ReverseProxy (a request with Expect takes
// it). Regression: an upstream's undeclared trailers went out under
// http.TrailerPrefix, which both servers write unchecked, Host,
// Authorization, Content-Length and Transfer-Encoding among them. The
// fields a trailer may carry still pass.
func TestForbiddenTrailersStayUpstream(t *testing.T) {
	t.Parallel()
	up := cannedUpstream(t, map[string]string{
		"/t": "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\n" +
			"X-T: t\r\nHost: evil.example\r\nAuthorization: Bearer x\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n" +
			"Content-Type: text/evil\r\nX-Undeclared: u\r\n" +
			// Valid in a trailer by httpguts' list, but meaningful only in a
			// head (RFC 9110 §6.5.1): an Upgrade: h2c reached the client.
			"Upgrade: h2c\r\nKeep-Alive: timeout=5\r\nSet-Cookie: gatehouse_session=planted\r\nStrict-Transport-Security: max-age=0\r\n\r\n",
	})
	cfg := oneRoute(up)
	for _, fast := range []bool{false, true} {
		addr, logs := optionsGate(t, cfg, Options{}, fast)
		for _, req := range []string{
			"GET /t HTTP/1.1\r\nHost: x\r\n\r\n",
			"POST /t HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			for err == nil && resp.StatusCode < 200 {
				resp, err = http.ReadResponse(br, nil)
			}
			if err != nil {
				t.Fatalf("fast_http1=%v: %v\n%v", fast, err, logs.lines())
			}
			b, err := io.ReadAll(resp.Body)
			c.Close()
			if string(b) != "ok" || err != nil {
				t.Fatalf("fast_http1=%v: body %q, %v", fast, b, err)
			}
			want := http.Header{"X-T": {"t"}, "X-Undeclared": {"u"}}
			if d := cmp.Diff(want, resp.Trailer); d != "" {
				t.Errorf("fast_http1=%v %q: trailer (-want +got):\n%s", fast, strings.Fields(req)[0], d)
			}
		}
	}
}

// TestNoContentHasNoLength: an upstream's 204 reaches the client without
// its Content-Length (RFC 9110 §8.6), which HTTP/2 clients (nghttp2,
// curl) refuse as a protocol error; the HTTP/1.1 servers dropped it, and
// h2server sent it.
func TestNoContentHasNoLength(t *testing.T) {
	t.Parallel()
	up := cannedUpstream(t, map[string]string{"/": "HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 50\r\n\r\n"})
	g := newGate(t, oneRoute(up))
	w := httptest.NewRecorder()
	g.srv.Config.Handler.ServeHTTP(w, httptest.NewRequest("GET", "http://gw.example/", nil))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", w.Code)
	}
	if v, ok := w.Result().Header["Content-Length"]; ok {
		t.Fatalf("a 204 went to the client with Content-Length: %q", v)
	}
}

// TestStaticZeroSuffixRange: "bytes=-0" asks for the last zero bytes,
// which no content has (RFC 9110 §14.1.2): alone it is 416 with
// "Content-Range: bytes */size"; beside a satisfiable range it is
// ignored. Regression: http.ServeContent answered it 206 with "bytes
// 10-9/10", an invalid Content-Range (§14.4).
func TestStaticZeroSuffixRange(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, fmt.Sprintf(`
routes: [{ name: site, match: { path_prefix: / }, static: { root: %q } }]
`, root))
	for _, c := range []struct {
		rng, wantRange, wantBody string
		want                     int
	}{
		{"bytes=-0", "bytes */10", "", 416},
		{"bytes=-000", "bytes */10", "", 416},
		{"bytes=-0,2-3", "bytes 2-3/10", "23", 206},
		{"bytes= -0 , -2", "bytes 8-9/10", "89", 206},
		{"bytes=-2", "bytes 8-9/10", "89", 206},
		{"bytes=-10", "bytes 0-9/10", "0123456789", 206},
	} {
		req := httptest.NewRequest("GET", "http://gw.example/a.txt", nil)
		req.Header.Set("Range", c.rng)
		w := httptest.NewRecorder()
		g.srv.Config.Handler.ServeHTTP(w, req)
		got := w.Result()
		if got.StatusCode != c.want || got.Header.Get("Content-Range") != c.wantRange {
			t.Errorf("Range: %s: %d %q, want %d %q", c.rng, got.StatusCode, got.Header.Get("Content-Range"), c.want, c.wantRange)
		}
		if c.want == 206 && w.Body.String() != c.wantBody {
			t.Errorf("Range: %s: body %q, want %q", c.rng, w.Body, c.wantBody)
		}
	}
}

// TestStaticManyRanges: up to maxRanges ranges make a multipart answer;
// a Range with more (cheap to send, a part each to assemble) is ignored
// and the whole file served (RFC 9110 §14.2), as two Range fields are.
func TestStaticManyRanges(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	content := strings.Repeat("0123456789", 4)
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, fmt.Sprintf(`
routes: [{ name: site, match: { path_prefix: / }, static: { root: %q } }]
`, root))
	ranges := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	for _, c := range []struct {
		rng  []string
		want int
	}{
		{[]string{ranges(2)}, 206},
		{[]string{ranges(maxRanges)}, 206},
		{[]string{ranges(maxRanges + 1)}, 200},
		{[]string{"bytes=0-0", "bytes=1-1"}, 200},
	} {
		req := httptest.NewRequest("GET", "http://gw.example/a.txt", nil)
		req.Header["Range"] = c.rng
		w := httptest.NewRecorder()
		g.srv.Config.Handler.ServeHTTP(w, req)
		got := w.Result()
		multipart := strings.HasPrefix(got.Header.Get("Content-Type"), "multipart/byteranges")
		if got.StatusCode != c.want || multipart != (c.want == 206) || (c.want == 200 && w.Body.String() != content) {
			t.Errorf("%d ranges in %d fields: %d %q (%d bytes), want %d", strings.Count(strings.Join(c.rng, ","), "-"), len(c.rng),
				got.StatusCode, got.Header.Get("Content-Type"), w.Body.Len(), c.want)
		}
	}
}

// TestWebSocketUpgradeOnGetOnly: WebSocket's opening handshake is a GET
// (RFC 6455 §4.1). An Upgrade on another method is ignored, as any other
// upgrade is (RFC 9110 §7.8): the request goes upstream as a plain one,
// and its answer is a plain response, never a 101 (which net/http wrote
// with "Content-Length: 0" for a POST, a length no 1xx may carry). So is
// an Upgrade in an HTTP/1.0 request, which a server must ignore (RFC 9110
// §7.8; WebSocket needs HTTP/1.1, RFC 6455 §4.1): it had been relayed,
// and answered 101.
func TestWebSocketUpgradeOnGetOnly(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	cfg := oneRoute(hostport(up.Server))
	const ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, fast := range []bool{false, true} {
		addr, logs := optionsGate(t, cfg, Options{}, fast)
		for _, req := range []struct{ method, raw string }{
			{"POST", "POST /ws HTTP/1.1\r\nHost: x\r\n" + ws + "Content-Length: 0\r\n\r\n"},
			{"GET", "GET /ws HTTP/1.0\r\nHost: x\r\n" + ws + "\r\n"},
		} {
			exchange(t, addr, req.raw, "ok", logs)
			got := up.last(t)
			if got.Method != req.method || got.Header["Upgrade"] != nil || got.Header["Connection"] != nil {
				t.Errorf("fast_http1=%v: %q: the upstream got %s with Upgrade %q, Connection %q; want a plain %s",
					fast, req.raw, got.Method, got.Header["Upgrade"], got.Header["Connection"], req.method)
			}
		}
	}
}
