package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
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
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
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
		case strings.HasPrefix(p, "/many/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/many/"))
			_, _ = io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", n)+final)
		}
	})
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
	up := informationalUpstream(t)
	yaml := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes: [ { name: app, match: { path_prefix: / }, upstream: app } ]
`, up.Addr)
	viaRP := newGate(t, yaml)
	viaRP.srv.Config.Handler.(*Engine).noDirect = true
	gates := []struct {
		name string
		addr string
	}{
		{"net/http", newGate(t, yaml).srv.Listener.Addr().String()},
		{"h1server", newH1Gate(t, yaml).srv.Listener.Addr().String()},
		{"reverse proxy only", viaRP.srv.Listener.Addr().String()},
	}
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
