package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// simpleHead runs readSimpleHead over raw, as buffered bytes.
func simpleHead(raw, method string) (*http.Response, bool, *bufio.Reader) {
	return simpleHeadInto(raw, method, nil)
}

// simpleHeadInto is simpleHead with a HeaderSupplier.
func simpleHeadInto(raw, method string, sup HeaderSupplier) (*http.Response, bool, *bufio.Reader) {
	br := bufio.NewReaderSize(strings.NewReader(raw), 8<<10)
	_, _ = br.Peek(1)
	req := &http.Request{Method: method}
	var cl clBody
	resp, ok := readSimpleHead(br, req, &cl, new(respAlloc), 4, sup, DefaultMaxResponseHeaderFields)
	return resp, ok, br
}

// lender supplies its map, as a proxy's client writer lends its own.
type lender struct{ h http.Header }

func (l *lender) ResponseHeader() http.Header { return l.h }

// withoutHops is h without RFC 9110 §7.6.1's hop-by-hop fields and those
// its Connection fields name: what a proxy passes on.
func withoutHops(h http.Header) http.Header {
	out := h.Clone()
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			delete(out, http.CanonicalHeaderKey(strings.TrimSpace(name)))
		}
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate"} {
		delete(out, k)
	}
	return out
}

// A map a HeaderSupplier lends gets the response's fields without the
// hop-by-hop ones, which the proxy would remove: a response whose
// Connection names other fields is not read into one.
func TestSuppliedMapGetsNoHopByHopFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw string
		want      http.Header // nil: not read into the map
	}{
		{"keep-alive (nginx)", "HTTP/1.1 200 OK\r\nServer: nginx\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
			http.Header{"Server": {"nginx"}, "Content-Length": {"0"}}},
		{"every hop-by-hop field a simple response may have", "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nTe: trailers\r\nProxy-Connection: keep-alive\r\nProxy-Authenticate: Basic\r\nX-App: 1\r\nContent-Length: 0\r\n\r\n",
			http.Header{"X-App": {"1"}, "Content-Length": {"0"}}},
		{"connection naming a field", "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n", nil},
		{"no hop-by-hop field", "HTTP/1.1 200 OK\r\nX-App: 1\r\nContent-Length: 0\r\n\r\n",
			http.Header{"X-App": {"1"}, "Content-Length": {"0"}}},
	} {
		l := &lender{h: http.Header{}}
		resp, ok, _ := simpleHeadInto(tc.raw, "GET", l)
		if tc.want == nil {
			if ok {
				t.Errorf("%s: read into the supplied map: %v", tc.name, resp.Header)
			}
			continue
		}
		if !ok || !reflect.DeepEqual(l.h, tc.want) {
			t.Errorf("%s: ok %v, map %v; want %v", tc.name, ok, l.h, tc.want)
		}
	}
}

func TestSimpleHeadTakesTheCommonShapeOnly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, raw, method string
		want              bool
	}{
		{"common", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", "GET", true},
		{"no reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", "GET", true},
		{"lower-case names", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-app: a\r\nX-App: b\r\n\r\nhi", "GET", true},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", false},
		{"1xx", "HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n", "GET", false},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n", "GET", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nto the end", "GET", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", false},
		{"length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "GET", false},
		{"keep-alive (nginx, Node.js)", "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello", "GET", true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"close among others", "HTTP/1.1 200 OK\r\nConnection: x-a\r\nConnection: Close\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"pragma", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"trailer", "HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"folded", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", "GET", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", "GET", false},
		{"control byte", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 5\r\n\r\nhello", "GET", false},
		{"incomplete", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "GET", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ok, br := simpleHead(c.raw, c.method)
			if ok != c.want {
				t.Fatalf("simple = %v, want %v", ok, c.want)
			}
			if !ok && br.Buffered() != len(c.raw) {
				t.Fatalf("a refused head consumed %d bytes", len(c.raw)-br.Buffered())
			}
		})
	}
}

// FuzzSimpleHeadMatchesReadResponse: whatever readSimpleHead accepts,
// http.ReadResponse reads the same way: status, protocol, fields, length,
// Close, and the body's bytes and end.
func FuzzSimpleHeadMatchesReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\ncontent-length: 007\r\nx-a:\t a b \t\r\nX-A: c\r\nX-Empty:\r\n\r\nhello!!",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 \xffOK\r\nX-Obs: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nabcdef",
		// Near misses, each refused for one reason: mutations cross over.
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
		"HTTP/1.1 204 No Content\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nx",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		got, ok, br := simpleHead(string(raw), method)
		if !ok {
			if br.Buffered() != len(raw) {
				t.Fatalf("a refused head consumed %d bytes", len(raw)-br.Buffered())
			}
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("accepted what http.ReadResponse refuses (%v): %q", err, raw)
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
			got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
			got.ContentLength != want.ContentLength || got.Close != want.Close ||
			!reflect.DeepEqual(got.Header, want.Header) || len(want.TransferEncoding) != 0 || len(want.Trailer) != 0 {
			t.Fatalf("%q:\n got %q %d %s %v len %d close %v\nwant %q %d %s %v len %d close %v te %v trailer %v", raw,
				got.Status, got.StatusCode, got.Proto, got.Header, got.ContentLength, got.Close,
				want.Status, want.StatusCode, want.Proto, want.Header, want.ContentLength, want.Close, want.TransferEncoding, want.Trailer)
		}
		// Into a supplied map: the same fields less the hop-by-hop ones,
		// or not at all when Connection names others.
		if s, sok, _ := simpleHeadInto(string(raw), method, &lender{h: http.Header{}}); sok &&
			!reflect.DeepEqual(s.Header, withoutHops(want.Header)) {
			t.Fatalf("%q: supplied map %v, want %v", raw, s.Header, withoutHops(want.Header))
		}
		gb, gerr := io.ReadAll(got.Body)
		wb, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gb, wb) || !errors.Is(gerr, werr) && (gerr == nil || werr == nil || gerr.Error() != werr.Error()) {
			t.Fatalf("%q: body %q (%v), want %q (%v)", raw, gb, gerr, wb, werr)
		}
	})
}
