package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/lb"
	"gatehouse/internal/testutil"
)

// informationalUpstream answers /hints with a 103 carrying hop-by-hop
// fields, and /many/N with N plain 103s, each before a 200, and /flood
// with 103s and nothing else; it reads a request's body whole first.
func informationalUpstream(t *testing.T) *testutil.RawServer {
	t.Helper()
	// Connection: close: this upstream serves one request per connection,
	// and a POST sent on a pooled connection it has just closed would not
	// be retried (the test failed now and then with a 502).
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	return testutil.ServeRaw(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		switch p := req.URL.Path; {
		case p == "/hints":
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"+
				"Connection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"+
				"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: X-Sum\r\n\r\n"+final)
		case p == "/flood": // until the gateway hangs up
			for {
				if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"); err != nil {
					return
				}
			}
		case strings.HasPrefix(p, "/fields103/"): // a 103 of N fields
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/fields103/"))
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\n"+strings.Repeat("Link: </a.css>\r\n", n)+"\r\n"+final)
		case strings.HasPrefix(p, "/fields/"): // a final head of N fields and more
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/fields/"))
			_, _ = io.WriteString(c, strings.Replace(final, "\r\n\r\n", "\r\n"+strings.Repeat("X-F: v\r\n", n)+"\r\n", 1))
		case strings.HasPrefix(p, "/bytes/"): // a final head with a field of N bytes
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/bytes/"))
			_, _ = io.WriteString(c, strings.Replace(final, "\r\n\r\n", "\r\nX-Big: "+strings.Repeat("b", n)+"\r\n\r\n", 1))
		case strings.HasPrefix(p, "/many/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/many/"))
			_, _ = io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", n)+final)
		}
	})
}

// informationalGates are Gatehouse in front of informationalUpstream (its
// upstream's settings with upstreamExtra) on every path: the direct
// attempt under net/http and under h1server, and ReverseProxy alone.
func informationalGates(t *testing.T, upstreamExtra string) []struct{ name, addr string } {
	t.Helper()
	up := informationalUpstream(t)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q]%s } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app } ]
`, up.Addr, upstreamExtra)
	viaRP := newGate(t, yaml)
	viaRP.srv.Config.Handler.(*Engine).noDirect = true
	return []struct{ name, addr string }{
		{"net/http", newGate(t, yaml).srv.Listener.Addr().String()},
		{"h1server", newH1Gate(t, yaml).srv.Listener.Addr().String()},
		{"reverse proxy only", viaRP.srv.Listener.Addr().String()},
	}
}

// exchangeAll sends request on a new connection and reads every response
// to it: the 1xx ones, then the final one (its status and body).
func exchangeAll(t *testing.T, addr, request string) (infos []*http.Response, status int, body string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not a wait
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(c) // the client asked to close
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %d 1xx: %v in %q", len(infos), err, raw)
		}
		if resp.StatusCode >= 200 {
			b, _ := io.ReadAll(resp.Body)
			return infos, resp.StatusCode, string(b)
		}
		infos = append(infos, resp)
	}
}

// 1xx responses reach the client without hop-by-hop fields, as final ones
// do, and an upstream may send at most lb.Max1xx of them, on every path:
// the direct attempt, ReverseProxy over the direct client (no body), and
// ReverseProxy over the Transport (a body), under net/http and h1server.
// Regression: a 103's Connection, Keep-Alive, Upgrade, … and the fields
// Connection named reached the client; a POST took any number of 1xx
// where a GET failed after 5.
func TestInformationalResponsesLikeFinalOnes(t *testing.T) {
	t.Parallel()
	gates := informationalGates(t, "")
	methods := []struct{ name, head string }{
		{"GET", "GET %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"},
		{"POST", "POST %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody"},
	}
	for _, g := range gates {
		for _, m := range methods {
			t.Run(g.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				infos, status, body := exchangeAll(t, g.addr, fmt.Sprintf(m.head, "/hints"))
				if len(infos) != 1 || status != 200 || body != "ok" {
					t.Fatalf("got %d 1xx, then %d %q; want one 103 then 200 ok", len(infos), status, body)
				}
				if got, want := headerLines(infos[0].Header), "Link: </a.css>; rel=preload"; got != want {
					t.Errorf("103 header:\n%s\nwant only\n%s", got, want)
				}

				infos, status, _ = exchangeAll(t, g.addr, fmt.Sprintf(m.head, "/many/"+strconv.Itoa(lb.Max1xx)))
				if len(infos) != lb.Max1xx || status != 200 {
					t.Errorf("%d 1xx from upstream: got %d, then %d; want all, then 200", lb.Max1xx, len(infos), status)
				}
				infos, status, _ = exchangeAll(t, g.addr, fmt.Sprintf(m.head, "/many/"+strconv.Itoa(lb.Max1xx+1)))
				if len(infos) != lb.Max1xx || status != http.StatusBadGateway {
					t.Errorf("%d 1xx from upstream: got %d, then %d; want %d, then 502", lb.Max1xx+1, len(infos), status, lb.Max1xx)
				}
				infos, status, _ = exchangeAll(t, g.addr, fmt.Sprintf(m.head, "/flood"))
				if len(infos) != lb.Max1xx || status != http.StatusBadGateway {
					t.Errorf("1xx without end: got %d, then %d; want %d, then 502", len(infos), status, lb.Max1xx)
				}
			})
		}
	}
}

// An upstream's response heads are bounded in bytes and fields on every
// path (the Transport took 10 MiB of any number of fields: a few heads of
// 70 000 fields held hundreds of MiB), 1xx heads each on their own; and
// an HTTP/1.0 client gets no 1xx (RFC 9110 §15.2), which it would read as
// the final response.
func TestResponseHeadBounds(t *testing.T) {
	t.Parallel()
	gates := informationalGates(t, ", max_response_header_bytes: 8KiB, max_response_header_count: 20")
	methods := []struct{ name, head string }{
		{"GET", "GET %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"},
		{"POST", "POST %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody"},
		{"Expect", "POST %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody"},
	}
	for _, g := range gates {
		for _, m := range methods {
			t.Run(g.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				for _, tc := range []struct {
					path   string
					n1xx   int
					status int
				}{
					{"/fields/10", 0, 200},
					{"/fields/25", 0, 502},
					{"/bytes/6000", 0, 200},
					{"/bytes/9000", 0, 502},
					{"/fields103/10", 1, 200},
					{"/fields103/25", 0, 502},
				} {
					infos, status, body := exchangeAll(t, g.addr, fmt.Sprintf(m.head, tc.path))
					infos = slices.DeleteFunc(infos, func(r *http.Response) bool { return r.StatusCode == 100 }) // the client's server's own
					if len(infos) != tc.n1xx || status != tc.status || status == 200 && body != "ok" {
						t.Errorf("%s: %d 1xx, then %d %.40q; want %d, then %d", tc.path, len(infos), status, body, tc.n1xx, tc.status)
					}
				}
				head10 := strings.Replace(fmt.Sprintf(m.head, "/hints"), "HTTP/1.1", "HTTP/1.0", 1)
				infos, status, body := exchangeAll(t, g.addr, head10)
				if len(infos) != 0 && (m.name != "Expect" || len(infos) != 1 || infos[0].StatusCode != 100) || status != 200 || body != "ok" {
					t.Errorf("HTTP/1.0 client: %d 1xx, then %d %q; want no 1xx, then 200 ok", len(infos), status, body)
				}
				// Not passed on, but still bounded: a flood of them ends
				// the attempt.
				_, status, _ = exchangeAll(t, g.addr, strings.Replace(head10, "/hints", "/flood", 1))
				if status != http.StatusBadGateway {
					t.Errorf("HTTP/1.0 client, 1xx without end: %d, want 502", status)
				}
			})
		}
	}
}

// A 1xx is written with a fresh write deadline. Under h1server, which
// keeps a connection's write deadline between requests, the deadline the
// last response left had passed when a request came after an idle
// longer than write_timeout, and its 103 was cut with the connection.
// Regression: 60 s idle, then a 103, lost the response.
func TestInformationalAfterIdleLongerThanWriteTimeout(t *testing.T) {
	t.Parallel()
	up := testutil.ServeRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	const writeTimeout = 50 * time.Millisecond
	for _, h1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h1server=%v", h1), func(t *testing.T) {
			t.Parallel()
			addr := writeTimeoutGateOn(t, up.Addr, writeTimeout, h1)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not a wait
			br := bufio.NewReader(c)
			exchange := func() (int, error) {
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
				var n1xx int
				for {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return n1xx, err
					}
					if resp.StatusCode < 200 {
						n1xx++
						continue
					}
					_, err = io.Copy(io.Discard, resp.Body)
					return n1xx, err
				}
			}
			if n, err := exchange(); n != 1 || err != nil {
				t.Fatalf("first request: %d 1xx, %v", n, err)
			}
			// The server set its deadline before writing what was just
			// read: it has passed once write_timeout has from now.
			<-time.After(writeTimeout)
			if n, err := exchange(); n != 1 || err != nil {
				t.Fatalf("after %v idle (write_timeout): %d 1xx, %v; want the 103 and the 200", writeTimeout, n, err)
			}
		})
	}
}

// writeTimeoutGateOn is writeTimeoutGate served by net/http or, as
// internal/app serves plain listeners, by h1server; it returns the
// listener's address.
func writeTimeoutGateOn(t *testing.T, target string, writeTimeout time.Duration, h1 bool) string {
	t.Helper()
	if !h1 {
		return writeTimeoutGate(t, target, writeTimeout).Listener.Addr().String()
	}
	h := oneRouteHolder(t, target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveH1(t, &http.Server{Handler: New(Options{Holder: h, WriteTimeout: writeTimeout})}, ln)
	return ln.Addr().String()
}
