package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
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
	cfg := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, up)
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
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.WriteString(c, r.req); err != nil {
						t.Fatal(err)
					}
					br := bufio.NewReader(c)
					for {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							t.Fatalf("reading the response: %v\n%v", err, logs.lines())
						}
						if v := resp.Header["X-Internal"]; v != nil {
							t.Errorf("%s: a field the upstream's Connection named reached the client: X-Internal: %q", resp.Status, v)
						}
						if resp.StatusCode < 200 {
							continue
						}
						b, err := io.ReadAll(resp.Body)
						if resp.StatusCode != 200 || string(b) != "ok" || err != nil {
							t.Fatalf("%s %q %v, want 200 \"ok\"\n%v", resp.Status, b, err, logs.lines())
						}
						break
					}
				})
			}
		})
	}
}
