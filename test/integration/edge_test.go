//go:build integration

package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
	"gatehouse/internal/testutil/fakeidp"
)

// edgeGate runs gatehouse with fast_http1 on or off in front of an
// in-process upstream that counts the requests it receives.
func edgeGate(t *testing.T, fast bool) (addr string, received *atomic.Int64) {
	t.Helper()
	received = new(atomic.Int64)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	idp := fakeidp.New(t)
	addr = testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], fast_http1: %v, body_read_timeout: 30s }
admin: { listen: "off" }
auth: { issuers: { main: { issuer: %q, audience: gatehouse } } }
rate_limits: { one: { key: client_ip, rate: 1/h, burst: 1 } }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app }
  - { name: admin, match: { path_prefix: /admin }, upstream: app }
  - { name: static, match: { path_prefix: /static }, upstream: app }
  - { name: java, match: { path_prefix: /java }, upstream: app, allow_path_params: true }
  - { name: limited, match: { path_prefix: /limited }, upstream: app, rate_limits: [one] }
  - { name: authed, match: { path_prefix: /authed }, upstream: app, auth: {} }
  - { name: timed, match: { path_prefix: /timed }, upstream: app, timeout: 1s }
`, addr, fast, idp.Issuer, strings.TrimPrefix(up.URL, "http://")), addr)
	return addr, received
}

// rawStatus sends one request on its own connection and returns the
// response's status code.
func rawStatus(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// answerBeforeBody sends head and part of the body it announces; the
// response head must arrive within 3s, and the connection close within
// 3s of it. It returns the status code and how long it all took.
func answerBeforeBody(t *testing.T, addr, head, part string) (int, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = io.WriteString(c, head+part)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q: no response head within 3s: %v", head, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, br); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%q: %s, and the connection still open 3s later", head, resp.Status)
	}
	return resp.StatusCode, time.Since(start)
}

// TestEdgeTargetsBodiesAndRouteTimeout attacks gatehouse with raw sockets
// (issue 14), on both HTTP/1.1 servers: request targets it cannot route
// safely are 400; answers given without the request body come at once
// and close the connection; a route timeout cuts a slow body. Refused
// requests never reach the upstream.
func TestEdgeTargetsBodiesAndRouteTimeout(t *testing.T) {
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprint("fast_http1=", fast), func(t *testing.T) {
			addr, received := edgeGate(t, fast)
			for _, target := range []string{
				"/admin#x", "/app?a=1#x", "/caf%C3", "/caf%E9", "/app/a%00b", "/app/a%7Fb",
				"/static/..;/admin/x", "/admin;x/secret", "/admin%3Bx/secret", "/java/..;/admin",
			} {
				if got := rawStatus(t, addr, target); got != 400 {
					t.Errorf("GET %q: %d, want 400", target, got)
				}
			}
			if n := received.Load(); n != 0 {
				t.Fatalf("the upstream received %d refused requests", n)
			}
			if got := rawStatus(t, addr, "/java;jsessionid=1/page"); got != 200 || received.Load() != 1 {
				t.Fatalf("path parameters on an opted-in route: %d, upstream saw %d", got, received.Load())
			}
			if got := rawStatus(t, addr, "/limited"); got != 200 { // the limit's one request
				t.Fatalf("first request on the limited route: %d", got)
			}

			before := received.Load()
			for _, tc := range []struct {
				path string
				want int
			}{{"/nothing", 404}, {"/limited", 429}, {"/authed", 401}} {
				for _, body := range []string{"Content-Length: 10000000\r\n", "Content-Length: 100000\r\n"} {
					got, _ := answerBeforeBody(t, addr, "POST "+tc.path+" HTTP/1.1\r\nHost: x\r\n"+body+"\r\n", strings.Repeat("x", 1000))
					if got != tc.want {
						t.Errorf("POST %s with %s: %d, want %d", tc.path, strings.TrimSpace(body), got, tc.want)
					}
				}
			}
			if n := received.Load() - before; n != 0 {
				t.Fatalf("the upstream received %d refused requests", n)
			}

			// body_read_timeout is 30s; the route's timeout, 1s, cuts it.
			got, took := answerBeforeBody(t, addr, "POST /timed HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", "0123456789")
			if got != 504 || took > 3*time.Second {
				t.Fatalf("a body stalled on a 1s route: %d after %v", got, took)
			}
		})
	}
}
