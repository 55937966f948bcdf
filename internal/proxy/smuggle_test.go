package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// echoUpstream reads requests on each connection one after another and
// records "METHOD PATH body=..." for each; it answers each with its path.
type echoUpstream struct {
	*testutil.RawServer
	mu   sync.Mutex
	recs []string
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	u := &echoUpstream{}
	u.RawServer = testutil.ServeRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, err := io.ReadAll(req.Body)
			u.record(fmt.Sprintf("%s %s body=%q err=%v", req.Method, req.URL.Path, b, err))
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path); err != nil {
				return
			}
		}
	})
	return u
}

func (u *echoUpstream) record(rec string) {
	u.mu.Lock()
	u.recs = append(u.recs, rec)
	u.mu.Unlock()
}

func (u *echoUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.recs
	u.recs = nil
	return r
}

// rawAll writes payload on a new connection, then reads every response
// until the gateway closes or goes quiet.
func rawAll(t *testing.T, addr, payload string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	go io.WriteString(c, payload)
	br := bufio.NewReader(c)
	var out []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
		_ = c.SetDeadline(time.Now().Add(1 * time.Second))
	}
}

// TestBodyFramingNeverSmuggles sends requests with bodies in every framing
// an attacker may try (pipelined after a body, a body answered 404 that
// holds a request, chunk extensions, framing fields in a trailer,
// HTTP/1.0, overflowing chunk sizes, GET with a body) on both HTTP/1.1
// servers, and checks that the upstream completes only the client's own
// requests, each answered to the client in order.
func TestBodyFramingNeverSmuggles(t *testing.T) {
	up := newEchoUpstream(t)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q], retries: { attempts: 1 } } }
routes: [ { name: app, match: { path_prefix: /app }, upstream: app } ]
`, up.Addr)
	smug := "GET /app/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct{ name, payload string }{
		{"cl body then pipelined", "POST /app/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /app/b HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"404 with smuggle body", fmt.Sprintf("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /app/b HTTP/1.1\r\nHost: x\r\n\r\n", len(smug), smug)},
		{"404 chunked smuggle body", fmt.Sprintf("POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\nGET /app/b HTTP/1.1\r\nHost: x\r\n\r\n", len(smug), smug)},
		{"chunk ext", "POST /app/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;foo=bar\r\nabc\r\n0;x\r\n\r\nGET /app/b HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"trailer with framing", "POST /app/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\nX-T: 1\r\n\r\nGET /app/b HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"body with close", "POST /app/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc" + smug},
		{"http10 body", "POST /app/a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc" + smug},
		{"chunk size overflow", "POST /app/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n" + smug},
		{"cl leading zeros", "POST /app/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0003\r\n\r\nabc" + smug},
		{"dup cl", "POST /app/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + smug},
		{"get with cl body", "GET /app/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + smug},
		{"get with chunked body", "GET /app/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smug},
		{"lf-only chunk", "POST /app/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n" + smug},
	}
	for _, srv := range bothH1Servers {
		g := srv.new(t, yaml)
		addr := g.srv.Listener.Addr().String()
		for _, tc := range cases {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				got := rawAll(t, addr, tc.payload)
				time.Sleep(100 * time.Millisecond)
				ups := up.take()
				// Every request the upstream completed is one the client
				// sent as a request, answered to that client in order;
				// a body's bytes are never a request of their own.
				var want []string
				for _, r := range ups {
					if !strings.Contains(r, "err=<nil>") {
						continue // an incomplete request: never answered
					}
					_, path, _ := strings.Cut(r, " ")
					path, _, _ = strings.Cut(path, " ")
					want = append(want, "200 "+path)
				}
				var ok []string
				for _, g := range got {
					if strings.HasPrefix(g, "200 ") {
						ok = append(ok, g)
					}
				}
				if strings.Join(ok, "|") != strings.Join(want, "|") {
					t.Errorf("client: %q\nupstream: %q", got, ups)
				}
				if strings.HasPrefix(tc.name, "404") && len(ups) != 0 {
					t.Errorf("the upstream got %q for a request answered 404", ups)
				}
			})
		}
	}
}

// TestStalledBodyAfterEarlyAnswerCloses: a request answered before its
// body (404) whose client then stops sending gets its answer and a close
// at once, on both servers: nothing waits for the rest of the body.
func TestStalledBodyAfterEarlyAnswerCloses(t *testing.T) {
	up := newEchoUpstream(t)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q], retries: { attempts: 1 } } }
routes: [ { name: app, match: { path_prefix: /app }, upstream: app } ]
`, up.Addr)
	for _, srv := range bothH1Servers {
		t.Run(srv.name, func(t *testing.T) {
			g := srv.new(t, yaml)
			c, err := net.Dial("tcp", g.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
			_ = c.SetDeadline(time.Now().Add(4 * time.Second))
			start := time.Now()
			b, err := io.ReadAll(c)
			if took := time.Since(start); err != nil || len(b) == 0 || took > 2*time.Second {
				t.Errorf("after %v: %d bytes, %v; want the answer and a close at once", took, len(b), err)
			}
		})
	}
}
