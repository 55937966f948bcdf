package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http/httpguts"
)

// readLikeNetHTTP is what net/http's server makes of head: http.ReadRequest
// and then the checks its conn.readRequest adds, with Host taken out of
// the header.
func readLikeNetHTTP(head []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return nil, err
	}
	if req.ProtoMajor != 1 {
		return nil, errors.New("505 unsupported protocol version")
	}
	// ReadRequest takes Host out of the header; the server looks at it
	// first.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, err
	}
	raw, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	hosts, haveHost := raw["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != "CONNECT" {
		return nil, errors.New("missing required Host header")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return nil, errors.New("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, errors.New("invalid header value")
			}
		}
	}
	delete(req.Header, "Host")
	return req, nil
}

// requestView is what a handler can see of a Request that parseHead sets.
type requestView struct {
	Method, Proto, Host, RequestURI string
	ProtoMajor, ProtoMinor          int
	URL                             string
	Path, RawPath, RawQuery         string
	Opaque, Scheme, Fragment        string
	Header                          http.Header
	ContentLength                   int64
	TransferEncoding                []string
	Close                           bool
	NoBody                          bool
	Trailer                         http.Header
}

func view(r *http.Request) requestView {
	return requestView{
		Method: r.Method, Proto: r.Proto, Host: r.Host, RequestURI: r.RequestURI,
		ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		URL: r.URL.String(), Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
		Opaque: r.URL.Opaque, Scheme: r.URL.Scheme, Fragment: r.URL.Fragment,
		Header: r.Header, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
		Close: r.Close, NoBody: r.Body == http.NoBody, Trailer: r.Trailer,
	}
}

// checkHead fails t if parseHead takes head and the result differs from
// net/http's, or net/http refuses what parseHead took.
func checkHead(t *testing.T, head []byte) (taken bool) {
	t.Helper()
	var got http.Request
	var parts reqParts
	if !parseHead(head, &got, &parts, nil) {
		return false
	}
	want, err := readLikeNetHTTP(head)
	if err != nil {
		t.Fatalf("taken, but net/http refuses it (%v):\n%q", err, head)
	}
	if d := cmp.Diff(view(want), view(&got)); d != "" {
		t.Fatalf("request differs from net/http's (-want +got):\n%s\nhead: %q", d, head)
	}
	if got.URL.User != nil || got.URL.Host != "" || got.URL.ForceQuery != want.URL.ForceQuery {
		t.Fatalf("URL differs: %#v vs %#v", got.URL, want.URL)
	}
	// Into a reused map (ReuseRequestHeaders): one another head filled,
	// then cleared, as conn.keepHeader does.
	var other http.Request
	var otherParts reqParts
	if !parseHead([]byte(reuseHead), &other, &otherParts, nil) {
		t.Fatal("reuseHead not taken")
	}
	clear(other.Header)
	var again http.Request
	var againParts reqParts
	if !parseHead(head, &again, &againParts, other.Header) {
		t.Fatalf("taken into a new map, not into a reused one:\n%q", head)
	}
	if d := cmp.Diff(view(want), view(&again)); d != "" {
		t.Fatalf("request read into a reused map differs from net/http's (-want +got):\n%s\nhead: %q", d, head)
	}
	return true
}

// reuseHead fills the map checkHead reuses: fields a head under test may
// also have, and more.
const reuseHead = "GET /r HTTP/1.1\r\nHost: r\r\nX-A: stale\r\nAccept: stale\r\nAuthorization: stale\r\n" +
	"Cookie: stale\r\nConnection: close\r\nUser-Agent: stale\r\nX-B: stale\r\nX-C: stale\r\nX-D: stale\r\n\r\n"

func TestParseHeadTakesSimpleRequestsOnly(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		head string
		take bool
	}{
		{"wrk", "GET /x HTTP/1.1\r\nHost: 127.0.0.1:6188\r\n\r\n", true},
		{"browser", "GET /admin/page?a=1&b=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0\r\n" +
			"Accept: text/html,*/*;q=0.8\r\nAccept-Encoding: gzip, br\r\nCookie: a=b; c=d\r\nConnection: keep-alive\r\n\r\n", true},
		{"lower-case names", "HEAD / HTTP/1.1\r\nhost: a\r\nx-custom-thing: 1\r\nuser-agent: node\r\n\r\n", true},
		{"repeated field", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n", true},
		{"value spaces trimmed", "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t v \t\r\nX-B:\r\n\r\n", true},
		{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n", true},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n", true},
		{"encoded path", "GET /a%2Fb/%7Euser HTTP/1.1\r\nHost: a\r\n\r\n", true},

		{"POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", true},
		{"POST without a length", "POST / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET with a length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", true},
		{"PUT chunked", "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"GET chunked", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"repeated equal lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\n", true},
		{"length with leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0005\r\n\r\n", true},
		{"chunked with a trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-a, X-B\r\ntrailer: ,x-c\r\n\r\n", true},
		{"chunked with an empty trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: ,\r\n\r\n", true},
		{"trailer without chunking", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTrailer: X-A\r\n\r\n", true},
		{"trailer on a bodyless request", "GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n", true},
		{"other methods", "M-SEARCH /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n", true},
		{"lower-case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", true},

		{"differing lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n", false},
		{"empty length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", false},
		{"signed length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", false},
		{"huge length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", false},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"chunked in capitals", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", false},
		{"gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false},
		{"identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", false},
		{"bad trailer name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n", false},
		{"CONNECT", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"PRI", "PRI / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"bad method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"h2c upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", false},
		{"websocket", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
		{"no host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", false},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", false},
		{"absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", false},
		{"bare LF in a field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", false},
		{"control byte", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", false},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", false},
		{"pragma", "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", false},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"leading CRLF", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := checkHead(t, []byte(tt.head)); got != tt.take {
				t.Fatalf("taken = %v, want %v", got, tt.take)
			}
		})
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// FuzzParseHeadMatchesNetHTTP: whatever parseHead takes, net/http's
// server takes too, and reads into the same Request.
func FuzzParseHeadMatchesNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET /x HTTP/1.1\r\nHost: 127.0.0.1:6188\r\n\r\n",
		"HEAD /a/../b?q=%41 HTTP/1.1\r\nhost: [::1]:80\r\naccept: */*\r\nConnection: close\r\n\r\n",
		"GET /%7e;p?x#f HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX_B:\t \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"GET //x HTTP/1.1\r\nHost: xn--a.b\r\nCookie: \xff\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
		"PATCH /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-A, x-b\r\nConnection: close\r\n\r\n",
		"DELETE /p HTTP/1.1\r\nHost: a\r\nTrailer: X-A\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		i := bytes.Index(b, crlfcrlf)
		if i < 0 {
			return
		}
		checkHead(t, b[:i+4])
	})
}

// BenchmarkParseHead: a short head, and one with a 600-byte bearer token
// (bench/run.sh's gatehouse-full sends one; a browser's cookies are as
// long).
func BenchmarkParseHead(b *testing.B) {
	const short = "GET /kline/api/candles?symbol=BTC HTTP/1.1\r\nHost: 127.0.0.1:6188\r\nUser-Agent: bench\r\nAccept: */*\r\n"
	for _, h := range []struct{ name, head string }{
		{"short", short + "\r\n"},
		{"token", short + "Authorization: Bearer " + strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 30) + "\r\n\r\n"},
	} {
		b.Run(h.name, func(b *testing.B) {
			head := []byte(h.head)
			b.ReportAllocs()
			for b.Loop() {
				var r http.Request
				var parts reqParts
				if !parseHead(head, &r, &parts, nil) {
					b.Fatal("not taken")
				}
			}
		})
	}
}
