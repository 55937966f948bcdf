//go:build integration

package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"gatehouse/internal/testutil"
)

// h2Target is where a test speaks raw HTTP/2 to Gatehouse: cleartext
// (prior knowledge) or over TLS (ALPN h2), which share the same server.
type h2Target struct {
	addr string
	tls  *tls.Config // nil: h2c
}

// startH2Gatehouse runs Gatehouse with a plain listener and an HTTPS one
// for gw.test, the server settings server (lines indented under
// "server:") and the rest of the config after them, and returns where to
// speak HTTP/2 to it: cleartext (prior knowledge) and over TLS.
func startH2Gatehouse(t *testing.T, server, rest string) (h2c, overTLS h2Target) {
	t.Helper()
	addr, tlsAddr := testutil.FreePort(t), testutil.FreePort(t)
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, t.TempDir(), "gw", 1, "gw.test")
	testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server:
  listen: [%q]
%s  tls: { listen: [%q], certificates: [{ cert: %q, key: %q }], plain_hosts: [gw.test] }
%s`, addr, server, tlsAddr, cert, key, rest), addr)
	return h2Target{addr: addr}, h2Target{addr: tlsAddr, tls: &tls.Config{ServerName: "gw.test", RootCAs: ca.Pool, NextProtos: []string{"h2"}}}
}

// h2Gate is Gatehouse with a small HTTP/2 stream limit in front of an
// upstream whose ?do=hold requests wait until their client leaves.
func h2Gate(t *testing.T, overTLS bool) (h2Target, *upstream) {
	t.Helper()
	up := startUpstream(t, "app")
	h2c, tlsTarget := startH2Gatehouse(t, "  http2_max_concurrent_streams: 10\n  max_header_bytes: 16KiB\n", fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
`, up.Addr))
	if overTLS {
		return tlsTarget, up
	}
	return h2c, up
}

// h2Conn opens an HTTP/2 connection to g.
func h2Conn(t *testing.T, g h2Target) (net.Conn, *http2.Framer) {
	t.Helper()
	var c net.Conn
	var err error
	if g.tls != nil {
		var tc *tls.Conn
		tc, err = tls.Dial("tcp", g.addr, g.tls)
		if err == nil && tc.ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatalf("ALPN negotiated %q, want h2", tc.ConnectionState().NegotiatedProtocol)
		}
		c = tc
	} else {
		c, err = net.Dial("tcp", g.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// bothTransports runs f for cleartext HTTP/2 and HTTP/2 over TLS.
func bothTransports(t *testing.T, f func(t *testing.T, g h2Target)) {
	for _, overTLS := range []bool{false, true} {
		name := "h2c"
		if overTLS {
			name = "h2 over TLS"
		}
		t.Run(name, func(t *testing.T) {
			g, _ := h2Gate(t, overTLS)
			f(t, g)
		})
	}
}

func headerBlock(path string, extra ...hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "gw.test"}, {Name: ":path", Value: path}}, extra...) {
		_ = enc.WriteField(f)
	}
	return buf.Bytes()
}

// watchGoAway reads frames until the connection ends and reports the
// GOAWAY code the server sent, if any.
func watchGoAway(fr *http2.Framer) <-chan http2.ErrCode {
	got := make(chan http2.ErrCode, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				got <- 0xff // closed without GOAWAY
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				got <- ga.ErrCode
				return
			}
		}
	}()
	return got
}

// A client that opens streams and resets them at once, faster than
// handlers finish (HTTP/2 rapid reset, CVE-2023-44487), is disconnected
// with ENHANCE_YOUR_CALM; other clients are served meanwhile.
func TestHTTP2RapidResetIsCut(t *testing.T) { bothTransports(t, rapidReset) }

func rapidReset(t *testing.T, g h2Target) {
	c, fr := h2Conn(t, g)
	goAway := watchGoAway(http2.NewFramer(io.Discard, c))
	block := headerBlock("/flood?do=hold&id=rapid")
	sent := 0
	for id := uint32(1); id < 20000; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		sent++
	}
	select {
	case code := <-goAway:
		if code != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
		}
		t.Logf("rapid-reset client cut (GOAWAY %v) after writing %d of 10000 open+reset pairs", code, sent)
	case <-time.After(20 * time.Second):
		t.Fatalf("a rapid-reset client sent %d streams and was not disconnected", sent)
	}
	c2, fr2 := h2Conn(t, g)
	if err := fr2.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("/after"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr2.ReadFrame()
		if err != nil {
			t.Fatalf("a normal client after the flood: %v", err)
		}
		if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == 1 {
			fields, err := hpack.NewDecoder(4096, nil).DecodeFull(h.HeaderBlockFragment())
			if err != nil || len(fields) == 0 || fields[0].Name != ":status" || fields[0].Value != "200" {
				t.Fatalf("a normal client after the flood: %v %v", fields, err)
			}
			break
		}
	}
}

// A header block that never ends (HEADERS, then CONTINUATION frames
// forever) is refused once it passes max_header_bytes: the server closes
// the connection instead of buffering it (CVE-2023-45288).
func TestHTTP2ContinuationFloodIsCut(t *testing.T) { bothTransports(t, continuationFlood) }

func continuationFlood(t *testing.T, g h2Target) {
	c, fr := h2Conn(t, g)
	goAway := watchGoAway(http2.NewFramer(io.Discard, c))
	var pad bytes.Buffer
	enc := hpack.NewEncoder(&pad)
	for i := 0; pad.Len() < 16000; i++ {
		_ = enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: strings.Repeat("a", 900)})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("/x"), EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	var werr error
	for written.Load() < 64<<20 { // 64 MiB: far past any sane header block
		if werr = fr.WriteContinuation(1, false, pad.Bytes()); werr != nil {
			break
		}
		written.Add(int64(pad.Len()))
	}
	select {
	case code := <-goAway:
		t.Logf("CONTINUATION flood cut after %d KiB written (GOAWAY %v, write error %v)", written.Load()>>10, code, werr)
	case <-time.After(10 * time.Second):
		t.Fatalf("the server kept reading an endless header block (%d MiB written)", written.Load()>>20)
	}
	if werr == nil {
		t.Fatalf("the server accepted %d MiB of one header block", written.Load()>>20)
	}
	var ne net.Error
	if errors.As(werr, &ne) && ne.Timeout() {
		t.Fatalf("writes stalled instead of the connection being closed: %v", werr)
	}
}

// An error answered before the request body was read (413 here) ends
// the request's stream, not the HTTP/2 connection: "Connection: close",
// which closes an HTTP/1 connection after such an answer, would make Go's
// HTTP/2 server shut the whole connection down (GOAWAY), and every other
// stream on it with it.
func TestHTTP2EarlyErrorKeepsConnection(t *testing.T) {
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server: { listen: [%q] }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app, max_body_bytes: 1KiB }]
`, addr, up.Addr), addr)
	c, fr := h2Conn(t, h2Target{addr: addr})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	post := headerBlock("/x", hpack.HeaderField{Name: "content-length", Value: "100000"})
	post = bytes.Replace(post, []byte("GET"), []byte("PUT"), 1) // same length: the literal stays valid
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: post, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil) // one per connection: its table carries over
	if got := h2Outcome(fr, dec, 1); got != ":status 413" {
		t.Fatalf("oversized body: %s, want 413", got)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: headerBlock("/x"), EndHeaders: true, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	if got := h2Outcome(fr, dec, 3); got != ":status 200" {
		t.Fatalf("next stream on the same connection: %s, want 200", got)
	}
}

// Requests RFC 9113 calls malformed get no answer from the upstream, over
// cleartext HTTP/2 as over TLS: both are served by Gatehouse's own HTTP/2
// server (h1server hands it the connections that open with the preface),
// so h2c has the same checks as HTTPS. Until then net/http's h2c server
// forwarded a GET with "content-length: 5" and END_STREAM, and a host
// field naming another host than :authority.
func TestHTTP2MalformedRequestsRefused(t *testing.T) {
	var seen sync.Map // path → true, as the upstream received it
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, true)
	}))
	t.Cleanup(up.Close)
	// Gatehouse's own servers by name (the suite's net/http leg keeps them).
	h2c, overTLS := startH2Gatehouse(t, "  fast_http1: true\n  fast_http2: true\n", fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
`, strings.TrimPrefix(up.URL, "http://")))
	targets := map[string]h2Target{"h2c": h2c, "h2 over TLS": overTLS}
	for name, g := range targets {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name      string
				extra     []hpack.HeaderField
				endStream bool
			}{
				{"content-length without a body", []hpack.HeaderField{{Name: "content-length", Value: "5"}}, true},
				{"host beside another :authority", []hpack.HeaderField{{Name: "host", Value: "other.test"}}, true},
			} {
				path := "/bad/" + strings.ReplaceAll(name+"-"+tc.name, " ", "-")
				c, fr := h2Conn(t, g)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(path, tc.extra...), EndHeaders: true, EndStream: tc.endStream}); err != nil {
					t.Fatal(err)
				}
				if got := h2Outcome(fr, hpack.NewDecoder(4096, nil), 1); strings.HasPrefix(got, ":status 2") {
					t.Errorf("%s: %s, want a stream reset or 400", tc.name, got)
				}
				if _, ok := seen.Load(path); ok {
					t.Errorf("%s: reached the upstream", tc.name)
				}
			}
			// The same connection setup with a well-formed request does
			// reach it: the checks above are not vacuous.
			path := "/good/" + strings.ReplaceAll(name, " ", "-")
			_, fr := h2Conn(t, g)
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(path), EndHeaders: true, EndStream: true}); err != nil {
				t.Fatal(err)
			}
			if got := h2Outcome(fr, hpack.NewDecoder(4096, nil), 1); got != ":status 200" {
				t.Fatalf("well-formed request: %s", got)
			}
			if _, ok := seen.Load(path); !ok {
				t.Fatal("well-formed request never reached the upstream")
			}
		})
	}
}

// h2Outcome reads frames until stream id is answered, reset, or the
// connection ends, and says which: ":status N", "RST_STREAM code",
// "GOAWAY code" or "connection ended". dec is the connection's HPACK
// decoder (its table carries over from one response to the next).
func h2Outcome(fr *http2.Framer, dec *hpack.Decoder, id uint32) string {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return "connection ended: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String()
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return err.Error()
			}
			if f.StreamID != id {
				continue
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					return ":status " + hf.Value
				}
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}
}

// TestHTTP2TargetsAndValuesTheUpstreamCannotMisread sends over HTTP/2
// what an HTTP/1.1 request line or field cannot carry, to both HTTP/2
// servers (Gatehouse's and net/http's), cleartext and over TLS: a space
// in :path (RFC 9113 §8.3.1), which would go upstream inside the
// request line ("GET /x?a /admin HTTP/1.1"), and a field value with
// whitespace at an end (§8.2.1), which a route's header match would
// miss while the upstream writer trims it. Both are malformed: refused,
// and nothing reaches the upstream. A well-formed request on the same
// setup does.
func TestHTTP2TargetsAndValuesTheUpstreamCannotMisread(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	up := testutil.ServeRaw(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		mu.Lock()
		lines = append(lines, strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
		mu.Unlock()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		l := lines
		lines = nil
		return l
	}
	for _, fast := range []bool{true, false} {
		h2c, overTLS := startH2Gatehouse(t, fmt.Sprintf("  fast_http1: %v\n  fast_http2: %v\n", fast, fast), fmt.Sprintf(`
upstreams: { app: { targets: [%q], retries: { attempts: 1 } } }
routes:
  - { name: debug, match: { path_prefix: /, headers: { X-Debug: "1" } }, respond: { status: 403 } }
  - { name: app, match: { path_prefix: / }, upstream: app }
`, up.Addr))
		servers := "net/http's"
		if fast {
			servers = "Gatehouse's"
		}
		for name, g := range map[string]h2Target{"h2c": h2c, "h2 over TLS": overTLS} {
			t.Run(servers+" "+name, func(t *testing.T) {
				for _, tc := range []struct {
					name  string
					path  string
					extra []hpack.HeaderField
					want  string // "" for refused
				}{
					{"space in the query", "/x?a /admin", nil, ""},
					{"space in the path", "/x /admin", nil, ""},
					{"leading space in a value", "/x", []hpack.HeaderField{{Name: "x-debug", Value: " 1"}}, ""},
					{"trailing tab in a value", "/x", []hpack.HeaderField{{Name: "x-debug", Value: "1\t"}}, ""},
					{"the header match itself", "/x", []hpack.HeaderField{{Name: "x-debug", Value: "1"}}, ":status 403"},
					{"well-formed", "/x?a=%20b", []hpack.HeaderField{{Name: "x-other", Value: "a b"}}, ":status 200"},
				} {
					_, fr := h2Conn(t, g)
					if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(tc.path, tc.extra...), EndHeaders: true, EndStream: true}); err != nil {
						t.Fatal(err)
					}
					got := h2Outcome(fr, hpack.NewDecoder(4096, nil), 1)
					switch {
					case tc.want == "" && strings.HasPrefix(got, ":status 2"):
						t.Errorf("%s: %s, want a stream reset or 400", tc.name, got)
					case tc.want != "" && got != tc.want:
						t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
					}
					l := taken()
					if tc.want == ":status 200" {
						if len(l) != 1 || l[0] != "GET "+tc.path+" HTTP/1.1" {
							t.Errorf("%s: the upstream got %q", tc.name, l)
						}
					} else if len(l) != 0 {
						t.Errorf("%s: reached the upstream as %q", tc.name, l)
					}
				}
			})
		}
	}
}
