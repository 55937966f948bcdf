package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"gatehouse/internal/testutil"
)

// newLineUpstream is an echoUpstream that records the request line and
// Host field of each request as the bytes arrived, and answers 200.
func newLineUpstream(t *testing.T) *echoUpstream {
	u := &echoUpstream{}
	u.RawServer = testutil.ServeRaw(t, func(c net.Conn) {
		tp := textproto.NewReader(bufio.NewReader(c))
		for {
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				return
			}
			u.record(line + " | Host: " + h.Get("Host"))
			if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
				return
			}
		}
	})
	return u
}

// TestRequestTargetAndHostReachTheUpstreamWellFormed sends, on raw
// sockets to both HTTP/1.1 servers, request targets and Host values that
// a server behind Gatehouse could read differently from Gatehouse's
// router: what goes upstream is a request line every parser splits the
// same way, with the Host that was routed on, or nothing at all.
func TestRequestTargetAndHostReachTheUpstreamWellFormed(t *testing.T) {
	up := newLineUpstream(t)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q], retries: { attempts: 1 } } }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app }
  - { name: root, match: { path: / }, upstream: app }
`, up.Addr)
	cases := []struct {
		name, target, host string
		status             string
		upstream           string // the request line and Host it got; "" for nothing
	}{
		// RFC 3986 §3.4: bytes a query may not hold raw go percent-encoded.
		{"query with bytes RFC 3986 does not allow raw", "/app/q?a=\"<>\\^`{|}&b=caf\xc3\xa9&c=%22ok", "gw.test",
			"200 OK", "GET /app/q?a=%22%3C%3E%5C%5E%60%7B%7C%7D&b=caf%C3%A9&c=%22ok HTTP/1.1 | Host: gw.test"},
		{"plain query unchanged", "/app/q?a=1&b=/x:y@z?&c=!$'()*+,=", "gw.test",
			"200 OK", "GET /app/q?a=1&b=/x:y@z?&c=!$'()*+,= HTTP/1.1 | Host: gw.test"},
		// RFC 3986 §3.2.2: an IPv6 address in brackets, then a port or nothing.
		{"bracketed Host with junk after", "/app/h", "[::1]:80junk", "400 Bad Request", ""},
		{"bracketed Host that is a name", "/app/h", "[internal.example]", "400 Bad Request", ""},
		{"bracketed Host with a zone", "/app/h", "[fe80::1%25eth0]", "400 Bad Request", ""},
		{"bracketed IPv4", "/app/h", "[127.0.0.1]", "400 Bad Request", ""},
		{"bracketed IPv6 with a port", "/app/h", "[::1]:8080", "200 OK", "GET /app/h HTTP/1.1 | Host: [::1]:8080"},
		{"bracketed IPv6, empty port", "/app/h", "[::1]:", "200 OK", "GET /app/h HTTP/1.1 | Host: [::1]:"},
		{"name with a port out of range", "/app/h", "gw.test:65536", "400 Bad Request", ""},
		// RFC 9110 §4.2.3: an empty path in absolute form is "/".
		{"absolute form, empty path", "http://gw.test", "other.test", "200 OK", "GET / HTTP/1.1 | Host: gw.test"},
		{"absolute form, empty path with a query", "http://gw.test?q=1", "other.test", "200 OK", "GET /?q=1 HTTP/1.1 | Host: gw.test"},
	}
	for _, srv := range bothH1Servers {
		g := srv.new(t, yaml)
		addr := g.srv.Listener.Addr().String()
		for _, tc := range cases {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				v := rawExchange(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
				if v.Status != tc.status {
					t.Fatalf("status %q (%s), want %q", v.Status, v.Err, tc.status)
				}
				got := up.take()
				switch {
				case tc.upstream == "" && len(got) != 0:
					t.Fatalf("reached the upstream: %q", got)
				case tc.upstream != "" && (len(got) != 1 || got[0] != tc.upstream):
					t.Fatalf("upstream got %q, want %q", got, tc.upstream)
				}
			})
		}
		// CONNECT names a tunnel, not a resource: refused in every form,
		// whichever route its path would match.
		for _, target := range []string{"/app/x", "gw.test:443", "http://gw.test/app/x"} {
			t.Run(srv.name+"/CONNECT "+target, func(t *testing.T) {
				v := rawExchange(t, addr, "CONNECT "+target+" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
				if !strings.HasPrefix(v.Status, "400") {
					t.Fatalf("status %q (%s), want 400", v.Status, v.Err)
				}
				if got := up.take(); len(got) != 0 {
					t.Fatalf("reached the upstream: %q", got)
				}
			})
		}
	}
}

// TestUpstreamHSTSNotSentOverPlainHTTP: RFC 6797 §7.2 forbids
// Strict-Transport-Security on a response over plain HTTP. An upstream's
// own copy is dropped there, on both HTTP/1.1 servers and on the direct
// and ReverseProxy paths (a GET, and a POST with a body), so that no app
// can set or clear (max-age=0) a host's policy over HTTP.
func TestUpstreamHSTSNotSentOverPlainHTTP(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=0")
		w.Header().Set("X-Kept", "1")
	}))
	t.Cleanup(up.Close)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app } ]
`, strings.TrimPrefix(up.URL, "http://"))
	for _, srv := range bothH1Servers {
		addr := srv.new(t, yaml).srv.Listener.Addr().String()
		for _, req := range []string{
			"GET /a HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
			"POST /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
		} {
			v := rawExchange(t, addr, req)
			if v.Header.Get("X-Kept") != "1" || v.Header["Strict-Transport-Security"] != nil {
				t.Errorf("%s %q: %s %v", srv.name, req[:4], v.Status, v.Header)
			}
		}
	}
}

// TestHSTSOverHTTPS: HTTPS responses carry the configured
// Strict-Transport-Security unless the upstream sent its own; an empty
// one is none (it would switch HSTS off from the app's side), and over
// plain HTTP there is none at all.
func TestHSTSOverHTTPS(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/own":
			w.Header().Set("Strict-Transport-Security", "max-age=5")
		case "/empty":
			w.Header()["Strict-Transport-Security"] = []string{""}
		}
	}))
	t.Cleanup(up.Close)
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, t.TempDir(), "gw", 1, "gw.test")
	g := newGate(t, fmt.Sprintf(`
server: { tls: { listen: ["127.0.0.1:0"], certificates: [{ cert: %q, key: %q }] } }
upstreams: { app: { targets: [%q] } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app } ]
`, cert, key, strings.TrimPrefix(up.URL, "http://")))
	for _, tc := range []struct {
		path  string
		https bool
		want  []string
	}{
		{"/none", true, []string{"max-age=31536000"}},
		{"/own", true, []string{"max-age=5"}},
		{"/empty", true, []string{"max-age=31536000"}},
		{"/own", false, nil},
	} {
		req := httptest.NewRequest("GET", "http://gw.test"+tc.path, nil)
		if tc.https {
			req.TLS = &tls.ConnectionState{ServerName: "gw.test", HandshakeComplete: true}
		}
		w := httptest.NewRecorder()
		g.srv.Config.Handler.ServeHTTP(w, req)
		if got := w.Result().Header["Strict-Transport-Security"]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s (https %v): %d, HSTS %q, want %q", tc.path, tc.https, w.Code, got, tc.want)
		}
	}
}
