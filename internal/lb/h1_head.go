package lb

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The common response head, read without http.ReadResponse.
//
// http.ReadResponse costs about eight allocations and a tenth of the
// upstream client's time on the common response: a status line, a few
// fields and one Content-Length, all in the buffer already. readSimpleHead
// reads only that shape, from what is buffered, and leaves everything else
// (1xx, 204, 304, HEAD, Transfer-Encoding, no or repeated Content-Length,
// Connection: close, Trailer, Pragma, folded or bare-LF lines, HTTP/1.0, a head
// not wholly buffered, any byte net/http would refuse) to
// http.ReadResponse, untouched. For what it accepts it returns what
// http.ReadResponse would: FuzzSimpleHeadMatchesReadResponse holds it to
// that, field by field and body byte by byte.

// respAlloc is one allocation for what a response needs besides its
// header map and its text: the response, the body reader h1Client.send
// wraps its body in, and the value slices of up to len(vals) fields. It
// is never reused; everything in it dies with the response.
type respAlloc struct {
	resp http.Response
	body h1Body
	vals [8]string
}

// readSimpleHead parses a simple response head from br's buffer. When ok
// is false nothing was consumed and the caller uses http.ReadResponse.
// body is where the Content-Length body reader goes (it lives in the
// caller's allocation); it is returned as resp.Body when the length is
// not 0. The response is ra.resp; ra is not used again after ok. The
// header map is sup's (HeaderSupplier), asked for only once the response
// is known to be simple, and filled without hop-by-hop fields; if sup is
// nil or gives none, it is made with room for reserve fields more
// (FieldReserver) and gets every field.
func readSimpleHead(br *bufio.Reader, req *http.Request, body *clBody, ra *respAlloc, reserve int, sup HeaderSupplier, maxFields int) (resp *http.Response, ok bool) {
	if req.Method == http.MethodHead || req.Method == http.MethodConnect {
		return nil, false // no body whatever the fields say
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := buf[:end+2] // every line with its CRLF
	// "HTTP/1.1 ddd" then " reason" or nothing.
	const proto = "HTTP/1.1 "
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil, false
	}
	line := head[:eol-1]
	if len(line) < len(proto)+3 || string(line[:len(proto)]) != proto {
		return nil, false
	}
	code := 0
	for _, c := range line[len(proto) : len(proto)+3] {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, false
	}
	if rest := line[len(proto)+3:]; len(rest) > 0 && (rest[0] != ' ' || len(rest) > 1 && rest[1] == ' ') {
		return nil, false
	}
	if !validText(line[len(proto):]) {
		return nil, false
	}

	// One string holds the status and every name and value, as textproto
	// does: one allocation for all of them.
	fields := head[eol+1:]
	n := bytes.Count(fields, []byte("\n"))
	if n > maxFields {
		return nil, false // readFull refuses it (or takes the lines that are not fields)
	}
	text := string(head)
	off := eol + 1
	var vals []string
	if n <= len(ra.vals) {
		vals = ra.vals[:n]
	} else {
		vals = make([]string, n)
	}
	// The map is made once the fields are known, sized for them less the
	// hop-by-hop ones a proxy removes, plus the reserve it will add: a map
	// that outgrows its size hint is copied into a larger one (2 % of the
	// proxy's CPU over HTTPS, where the response gains HSTS).
	var keyBuf [16]string
	var keys []string
	if n <= len(keyBuf) {
		keys = keyBuf[:n]
	} else {
		keys = make([]string, n)
	}
	hops := 0
	length := int64(-1)
	for i := 0; i < n; i++ {
		le := bytes.IndexByte(fields, '\n')
		l := fields[:le]
		fields = fields[le+1:]
		lineOff := off
		off += le + 1
		if len(l) == 0 || l[len(l)-1] != '\r' {
			return nil, false // a bare LF
		}
		l = l[:len(l)-1]
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(string(l[:colon])) {
			return nil, false // also a folded line: it starts with a space
		}
		v := trimOWS(l[colon+1:])
		if !validText(v) {
			return nil, false
		}
		vstart := lineOff + colon + 1
		for text[vstart] == ' ' || text[vstart] == '\t' {
			vstart++
		}
		key := textproto.CanonicalMIMEHeaderKey(text[lineOff : lineOff+colon])
		value := text[vstart : vstart+len(v)]
		switch key {
		case "Content-Length":
			if length >= 0 {
				return nil, false
			}
			if length = parseLength(v); length < 0 {
				return nil, false
			}
		case "Transfer-Encoding", "Trailer", "Pragma":
			return nil, false
		case "Connection":
			// "Connection: keep-alive" (nginx, Node.js) stays, as
			// http.ReadResponse leaves it; "close" is left to
			// http.ReadResponse, which also removes the field. A
			// supplied map gets no hop-by-hop field, so nothing it may
			// name can be left for the caller to remove.
			if httpguts.HeaderValuesContainsToken([]string{value}, "close") ||
				sup != nil && !onlyKeepAlive(value) {
				return nil, false
			}
			hops++
		case "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", "Proxy-Authenticate":
			hops++
		}
		keys[i], vals[i] = key, value
	}
	if length < 0 {
		return nil, false
	}
	// Consumed before the map is filled: a supplied map is filled only
	// for a response that is returned.
	if _, err := br.Discard(end + 4); err != nil {
		return nil, false // cannot happen: the bytes are buffered
	}
	var h http.Header
	supplied := false
	if sup != nil {
		h = sup.ResponseHeader()
		supplied = h != nil
	}
	if h == nil {
		h = make(http.Header, n-hops+reserve)
	}
	for i, key := range keys {
		if supplied && hops > 0 && isHop(key) {
			continue
		}
		if prior, dup := h[key]; dup {
			h[key] = append(prior, vals[i])
		} else {
			h[key] = vals[i : i+1 : i+1]
		}
	}
	status := text[len(proto) : eol-1]
	resp = &ra.resp
	*resp = http.Response{
		Status: status, StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: length, Request: req, Body: http.NoBody,
	}
	if length > 0 {
		*body = clBody{r: br, n: length}
		resp.Body = body
	}
	return resp, true
}

// isHop reports whether key (canonical) is a hop-by-hop field a simple
// response may carry (Transfer-Encoding and Trailer make it not simple).
func isHop(key string) bool {
	switch key {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", "Proxy-Authenticate":
		return true
	}
	return false
}

// onlyKeepAlive reports whether a Connection value names nothing but
// keep-alive: a field list whose members are all that token.
func onlyKeepAlive(v string) bool {
	for m := range strings.SplitSeq(v, ",") {
		if m = strings.TrimSpace(m); m != "" && !strings.EqualFold(m, "keep-alive") {
			return false
		}
	}
	return true
}

// trimOWS removes the optional whitespace (SP, HTAB) around a field
// value; bytes.Trim with a cutset of two builds a set on every call
// (1 % of the proxy's CPU on the HTTP/1.1 load).
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// validText reports whether b holds only what net/textproto accepts in a
// field value: no control byte but HTAB.
func validText(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length of 1 to 18 digits; -1 otherwise.
func parseLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// clBody reads a body of known length, as net/http's does: the end comes
// with the last byte, and a connection that ends early is
// io.ErrUnexpectedEOF.
type clBody struct {
	r *bufio.Reader
	n int64
}

func (b *clBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if b.n == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close does nothing: h1Body decides what happens to the connection.
func (b *clBody) Close() error { return nil }
