package lb

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// FuzzWriteHeadMatchesRequestWrite holds writeHead, the synchronous
// client's request writer, to net/http's: for a request the Transport
// would send (its method, field name and value checks, Request.Write's
// Host check), writeHead writes a head that http.ReadRequest reads as it
// reads Request.Write's (method, target, Host, fields, framing, Close,
// trailer keys), with ReverseProxy's empty User-Agent where the request
// has none. What the Transport refuses, writeHead refuses, without
// writing a byte. Three differences, all refusals where net/http sends:
// a space in the query or an opaque target, which breaks the request
// line (net/http refuses only control bytes there);
// a non-ASCII Host, which Request.Write turns into punycode (the servers
// in front of writeHead take only ASCII hosts), and an invalid Host,
// which Request.Write sends empty (golang/go#61431): an upstream that
// routes by Host would take an empty one for its default host.
//
// fields holds name ":" value lines, names as written (a map key need
// not be canonical); kind picks the framing: 0 none, 1 a length
// (n+1 bytes), 2 chunked with trailers (comma-separated names).
func FuzzWriteHeadMatchesRequestWrite(f *testing.F) {
	type seed struct {
		method, path, query, host, fields string
		kind                              uint8
		n                                 uint16
		close                             bool
		trailers                          string
	}
	for _, s := range []seed{
		{"GET", "/", "", "example.com", "Accept:*/*\nX-A: a \nX-A:b", 0, 0, false, ""},
		{"POST", "/api/v1/items", "a=1&b=%20", "127.0.0.1:3002", "Content-Type:application/json", 1, 41, false, ""},
		{"PUT", "/up", "", "[fe80::1%25en0]:8080", "User-Agent:curl/8", 2, 0, true, "X-Checksum,x-sig"},
		{"POST", "", "", "h", "user-agent:\ncontent-length:5", 0, 0, false, ""},
		{"PATCH", "/a b/ü", "q", "h", "X-Long:" + strings.Repeat("v", 300), 0, 0, true, ""},
		{"DELETE", "/x", "", "bad host", "X:1", 0, 0, false, ""},
		{"GET", "/x", "", "h", "Bad Name:1", 0, 0, false, ""},
		{"GET", "/x", "", "h", "X:bad\x01value", 0, 0, false, ""},
		{"G T", "/x", "", "h", "", 0, 0, false, ""},
		{"GET", "/x", "", "h", "Host:other\nTransfer-Encoding:chunked\nTrailer:X\nConnection:x", 0, 0, false, ""},
		{"POST", "/x", "", "h\xffh", "", 0, 0, false, ""},
	} {
		f.Add(s.method, s.path, s.query, s.host, s.fields, s.kind, s.n, s.close, s.trailers)
	}
	f.Fuzz(func(t *testing.T, method, path, query, host, fields string, kind uint8, n uint16, close bool, trailers string) {
		// Keys in canonical form, as every map the engine hands over has
		// them (a "ConneCtion" key beside Close would be a field read
		// back as Connection, in an order neither writer promises).
		h := http.Header{}
		for line := range strings.SplitSeq(fields, "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				name = textproto.CanonicalMIMEHeaderKey(name)
				h[name] = append(h[name], value)
			}
		}
		// The engine removes hop-by-hop fields before the client writes;
		// Request.Write would write a Connection field, writeHead never.
		delete(h, "Connection")
		req := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Host: host,
			Header: h, Close: close, ProtoMajor: 1, ProtoMinor: 1}
		cl, tf := int64(noBody), ""
		switch kind % 3 {
		case 1:
			cl = int64(n) + 1
			req.ContentLength = cl
			req.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", int(cl))))
		case 2:
			req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
			req.Body = io.NopCloser(strings.NewReader("x"))
			if c, ok := bodyLength(req); !ok || c != -1 {
				return // the client sends no chunked body for this method
			}
			cl = -1
			if trailers != "" {
				req.Trailer = http.Header{}
				for _, k := range strings.Split(trailers, ",") {
					req.Trailer[k] = nil
				}
				var err error
				if tf, err = trailerField(req.Trailer); err != nil {
					return // refused before writeHead
				}
			}
		}

		var got bytes.Buffer
		gw := bufio.NewWriterSize(&got, 64) // small: a long head flushes while it is written
		gerr := writeHead(gw, req, headBlock{}, cl, tf)
		if gerr == nil {
			gerr = gw.Flush()
		}

		ref := *req
		ref.Header = h.Clone()
		if _, ok := ref.Header["User-Agent"]; !ok {
			ref.Header["User-Agent"] = []string{""} // ReverseProxy's: no Go-http-client default
		}
		var want bytes.Buffer
		werr := transportRefuses(&ref)
		if werr == nil {
			werr = ref.Write(&want)
		}

		switch {
		case gerr != nil && werr != nil:
			if got.Len() != 0 {
				t.Fatalf("refused (%v) after writing %q", gerr, got.Bytes())
			}
			return
		case gerr != nil && strings.Contains(query, " "):
			return // net/http writes "GET /x?a b HTTP/1.1"; writeHead refuses
		case gerr != nil && !asciiOnly(host):
			return // Request.Write sends punycode; writeHead refuses
		case gerr != nil && !httpguts.ValidHostHeader(host) && bytes.Contains(want.Bytes(), []byte("\r\nHost: \r\n")):
			return // Request.Write sends an empty Host; writeHead refuses
		case gerr != nil:
			t.Fatalf("writeHead refused (%v) what net/http sends: %q", gerr, want.Bytes())
		case werr != nil:
			t.Fatalf("writeHead wrote what net/http refuses (%v): %q", werr, got.Bytes())
		}

		gotHead, wantHead := got.String(), want.String()
		g, gperr := http.ReadRequest(bufio.NewReader(&got))
		w, wperr := http.ReadRequest(bufio.NewReader(&want))
		if (gperr == nil) != (wperr == nil) {
			t.Fatalf("read back: %v against net/http's %v\n got %q\nwant %q", gperr, wperr, gotHead, wantHead)
		}
		if gperr != nil {
			return
		}
		if g.Method != w.Method || g.RequestURI != w.RequestURI || g.Host != w.Host ||
			g.ContentLength != w.ContentLength || !reflect.DeepEqual(g.TransferEncoding, w.TransferEncoding) ||
			g.Close != w.Close || !reflect.DeepEqual(g.Header, w.Header) || !reflect.DeepEqual(g.Trailer, w.Trailer) {
			t.Fatalf("heads differ:\n got %q\nwant %q", gotHead, wantHead)
		}
	})
}

// transportRefuses is what http.Transport checks before it writes a
// request: the method, and every field's name and values.
func transportRefuses(req *http.Request) error {
	if req.Method == "" || strings.IndexFunc(req.Method, func(r rune) bool { return !httpguts.IsTokenRune(r) }) >= 0 {
		return errInvalid
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return errInvalid
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return errInvalid
			}
		}
	}
	return nil
}

var errInvalid = io.ErrUnexpectedEOF

func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzAppendFieldsMatchesWriteHead holds the header block AppendFields
// makes (SendDirectBlock's) to what writeHead writes from a map of the
// same fields: the same head, line for line (a map's fields come in no
// set order), or a refusal in both cases. fields is name ":" value
// lines; omitted names (those starting with "X-O") are what a caller's
// omit leaves out, and are absent from the map writeHead is given.
func FuzzAppendFieldsMatchesWriteHead(f *testing.F) {
	for _, s := range []string{
		"Accept:*/*\nX-A: a \nX-A:b\nUser-Agent: ua \nUser-Agent:second",
		"user-agent:\ncontent-length:5\nX-Omit:gone",
		"Host:other\nTransfer-Encoding:chunked\nTrailer:X\nConnection:x\nTe:trailers",
		"Bad Name:1", "X:bad\x01value", "X-Omit-Bad:\x00", "X-Long:" + strings.Repeat("v", 300),
		"Cookie:a=1\nCookie:b=2\nAuthorization:Bearer t\nX:\t spaced\t",
	} {
		f.Add("POST", s, true)
	}
	f.Fuzz(func(t *testing.T, method, fields string, close bool) {
		h, kept := http.Header{}, http.Header{}
		for line := range strings.SplitSeq(fields, "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				name = textproto.CanonicalMIMEHeaderKey(name)
				h[name] = append(h[name], value)
				if !strings.HasPrefix(name, "X-O") {
					kept[name] = append(kept[name], value)
				}
			}
		}
		omit := func(k string) bool { return strings.HasPrefix(k, "X-O") }
		req := &http.Request{Method: method, URL: &url.URL{Path: "/p"}, Host: "h", Header: kept, Close: close}
		var want bytes.Buffer
		ww := bufio.NewWriterSize(&want, 64)
		werr := writeHead(ww, req, headBlock{}, noBody, "")
		if werr == nil {
			werr = ww.Flush()
		}

		block, ok := AppendFields([]byte("X-Before: 1\r\n")[:0], h, omit)
		if !ok {
			if len(block) != 0 {
				t.Fatalf("refused, yet the block grew: %q", block)
			}
			if werr == nil {
				t.Fatalf("AppendFields refused fields writeHead writes: %q", want.Bytes())
			}
			return
		}
		req.Header = h // read, not written
		var got bytes.Buffer
		gw := bufio.NewWriterSize(&got, 64)
		gerr := writeHead(gw, req, headBlock{b: block, all: true}, noBody, "")
		if gerr == nil {
			gerr = gw.Flush()
		}
		if werr != nil {
			if gerr == nil {
				t.Fatalf("writeHead refused the map (%v), the block went: %q", werr, got.Bytes())
			}
			return
		}
		if gerr != nil {
			t.Fatalf("the block was refused (%v), the map went", gerr)
		}
		if g, w := sortedLines(got.String()), sortedLines(want.String()); !reflect.DeepEqual(g, w) {
			t.Fatalf("heads differ:\n got %q\nwant %q", got.String(), want.String())
		}
	})
}

func sortedLines(head string) []string {
	lines := strings.Split(head, "\r\n")
	slices.Sort(lines)
	return lines
}
