//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// recorder is an upstream that notes the path of every request it gets,
// after reading its body through.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex // guards paths
	paths []string
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.paths = append(rec.paths, r.URL.Path)
		rec.mu.Unlock()
		if err != nil {
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

// bothServers runs f against a Gatehouse in front of a recorder, once
// with each plain HTTP/1.1 server: h1server in front of net/http
// (fast_http1: true) and net/http alone.
func bothServers(t *testing.T, serverExtra string, f func(t *testing.T, addr string, rec *recorder)) {
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast_http1=%v", fast), func(t *testing.T) {
			rec := startRecorder(t)
			addr := testutil.FreePort(t)
			testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], fast_http1: %v %s }
admin: { listen: "off" }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, fast, serverExtra, strings.TrimPrefix(rec.URL, "http://")), addr)
			f(t, addr, rec)
		})
	}
}

// rawExchange writes req on a new connection and returns the status
// codes of the responses read until the server closes it; it fails when
// the connection stays open for more than 5 s.
func rawExchange(t *testing.T, addr, req string) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readStatuses(t, c, bufio.NewReader(c))
}

// readStatuses reads responses from br until c ends, and returns their
// status codes; it fails when c stays open for more than 5 s.
func readStatuses(t *testing.T, c net.Conn, br *bufio.Reader) []int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var codes []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after responses %v", codes)
			}
			return codes
		}
		codes = append(codes, resp.StatusCode)
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return codes
		}
		resp.Body.Close()
	}
}

// Request smuggling and oversized heads (RFC 9112 §6.1, §6.3, §2.2,
// §5.2): each attack is answered with a 4xx and a closed connection, on
// both servers, and neither the attack nor anything after it reaches the
// upstream.
func TestRequestSmugglingRefused(t *testing.T) {
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	long := strings.Repeat("a", 9000)
	cases := []struct {
		name  string
		req   string
		codes []int
		paths []string // reached the upstream
	}{
		{"content-length and transfer-encoding",
			"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"transfer-encoding and content-length",
			"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"tab before chunked",
			"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"obs-fold", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"chunked, identity",
			"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"two transfer-encodings",
			"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"http/1.0 with transfer-encoding",
			"POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}, nil},
		{"after a good request", "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
			"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{200, 400}, []string{"/first"}},
		// Review of issue 14: a PRI line with a field is an HTTP/1
		// request, and must not switch the guard off.
		{"PRI with a header field, then smuggling", "PRI * HTTP/2.0\r\nHost: x\r\n\r\n" +
			"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400, 400}, nil},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", []int{400}, nil},
		{"request line over 8KiB", "GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled, []int{414}, nil},
		{"header line over 8KiB", "GET /a HTTP/1.1\r\nHost: x\r\nX-Long: " + long + "\r\n\r\n" + smuggled, []int{431}, nil},
		{"head over 32KiB", "GET /a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Many: "+long[:8000]+"\r\n", 5) + "\r\n" + smuggled, []int{431}, nil},
	}
	bothServers(t, "", func(t *testing.T, addr string, rec *recorder) {
		for _, tc := range cases {
			before := len(rec.got())
			codes := rawExchange(t, addr, tc.req)
			if fmt.Sprint(codes) != fmt.Sprint(tc.codes) {
				t.Errorf("%s: statuses %v, want %v", tc.name, codes, tc.codes)
			}
			if got := rec.got()[before:]; fmt.Sprint(got) != fmt.Sprint(tc.paths) && !(len(got) == 0 && tc.paths == nil) {
				t.Errorf("%s: the upstream got %v, want %v", tc.name, got, tc.paths)
			}
		}
		// The connection after a refused one is served as usual.
		if codes := rawExchange(t, addr, "GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); fmt.Sprint(codes) != "[200]" {
			t.Errorf("a good request after the attacks: %v", codes)
		}
	})
}

// A malformed chunked body is the client's fault: 400 and a close (it
// was 502, blamed on the upstream), and what follows it is never read
// as a request.
func TestMalformedChunkedBodyIs400(t *testing.T) {
	const head = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	bodies := map[string]string{
		"bare LF":              "3\nabc\r\n0\r\n\r\n",
		"0x prefix":            "0x3\r\nabc\r\n0\r\n\r\n",
		"plus sign":            "+3\r\nabc\r\n0\r\n\r\n",
		"negative":             "-1\r\nabc\r\n0\r\n\r\n",
		"overflow":             "10000000000000000\r\nabc\r\n0\r\n\r\n",
		"data longer":          "3\r\nabcdef\r\n0\r\n\r\n",
		"trailer with bare LF": "0\r\nX: y\n\n",
	}
	bothServers(t, "", func(t *testing.T, addr string, rec *recorder) {
		for name, body := range bodies {
			if codes := rawExchange(t, addr, head+body+smuggled); fmt.Sprint(codes) != "[400]" {
				t.Errorf("%s: statuses %v, want [400]", name, codes)
			}
		}
		for _, p := range rec.got() {
			if p == "/smuggled" {
				t.Errorf("a request after a malformed body reached the upstream")
			}
		}
		// A well-formed chunked body passes, and the connection stays open.
		if codes := rawExchange(t, addr, head+"3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"+"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); fmt.Sprint(codes) != "[200 200]" {
			t.Errorf("good chunked body then a GET: statuses %v, want [200 200]", codes)
		}
	})
}

// One 100 Continue per request: net/http sends its own when the body is
// read, and the upstream's is not relayed as a second one.
func TestOneContinuePerRequest(t *testing.T) {
	bothServers(t, "", func(t *testing.T, addr string, rec *recorder) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("first answer: %v, %v; want 100", resp, err)
		}
		io.WriteString(c, "abc")
		if codes := readStatuses(t, c, br); fmt.Sprint(codes) != "[200]" {
			t.Fatalf("after the body: %v, want [200] (one 100 only)", codes)
		}
	})
}

// On HTTPS net/http reads the head itself and drops what it cannot frame
// without a trace: an HTTP/1.0 request's Transfer-Encoding, a
// Content-Length beside Transfer-Encoding. Such a request ends its
// connection, so what follows is never read as a request.
func TestHTTPSClosesAfterFramingItCannotSee(t *testing.T) {
	g := startTLSGate(t, "")
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"
	for name, req := range map[string]string{
		"http/1.0 with transfer-encoding":      "POST /a HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"content-length and transfer-encoding": "POST /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
	} {
		c, err := tls.Dial("tcp", g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		codes := readStatuses(t, c, bufio.NewReader(c))
		c.Close()
		if len(codes) != 1 {
			t.Errorf("%s: answers %v, want one, then the connection closed", name, codes)
		}
	}
}
