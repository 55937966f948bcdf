package h1server

import (
	"bytes"
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpguts"

	"gatehouse/internal/httpsyntax"
)

// maxHeadLines is how many header lines a request head may have to be
// taken here; more go to net/http.
const maxHeadLines = 64

// parseHead reads head, a complete request head (request line, header
// lines, and the blank line that ends it, "\r\n\r\n" included), into req
// when it is one this server takes. ok is false when it is not: then
// nothing is consumed, and net/http gets the whole connection, head
// included, and gives the answer it always gives.
//
// What is taken is a strict subset of what net/http accepts, and for it
// req is what net/http's server would have made (FuzzParseHeadMatchesNetHTTP):
//   - the request line is a method (a token, not CONNECT or PRI), an
//     origin-form target (it starts with "/", bytes 0x21-0x7e) that
//     url.ParseRequestURI accepts, and " HTTP/1.1";
//   - every line ends in CRLF; no obs-fold, no whitespace before a colon;
//   - header names are tokens and values valid field values;
//   - exactly one Host, valid and not empty;
//   - the body, if any, is framed by one valid Content-Length (repeated
//     fields with the same value are one, as net/http makes them) or by
//     one "Transfer-Encoding: chunked", not both; net/http's
//     Transfer-Encoding field is dropped from the header, and a chunked
//     request's Trailer field becomes Request.Trailer (transfer.go
//     readTransfer, fixLength, fixTrailer);
//   - no Expect, Upgrade (h2c), or Pragma (which net/http rewrites).
//
// The request's ContentLength, TransferEncoding and Trailer are set, and
// Body is http.NoBody when there is no body; otherwise the caller sets it
// (ContentLength > 0 or -1, chunked).
//
// The head is copied into one string, and every key, value, target and
// host is a substring of it: one allocation instead of one per field.
// The URL and the header's value slices go into parts, which the caller
// allocates with the request's response (reqParts). The header map is h,
// which must be empty, or a new one when h is nil; h is untouched when ok
// is false.
func parseHead(head []byte, req *http.Request, parts *reqParts, h http.Header) (ok bool) {
	var (
		lines   [maxHeadLines][4]int32 // name start, name end, value start, value end
		n       int
		hostIdx = -1
		clIdx   = -1 // the first Content-Length field's line
		chunked bool
		// The Trailer fields' lines; net/http takes them out of a
		// chunked request's header.
		trIdx [4]int
		nTr   int
	)
	methodLen := 0
	for methodLen < len(head) && isTokenByte(head[methodLen]) {
		methodLen++
	}
	if methodLen == 0 || !bytes.HasPrefix(head[methodLen:], []byte(" /")) {
		return false
	}
	switch string(head[:methodLen]) {
	case http.MethodConnect, "PRI": // an authority target; HTTP/2's preface
		return false
	}
	i := methodLen + 1
	targetStart := i
	for i < len(head) && head[i] > 0x20 && head[i] < 0x7f {
		i++
	}
	targetEnd := i
	if !bytes.HasPrefix(head[i:], []byte(" HTTP/1.1\r\n")) {
		return false
	}
	i += len(" HTTP/1.1\r\n")
	for {
		if i >= len(head) {
			return false
		}
		if head[i] == '\r' { // the blank line; parseHead's caller found its "\n"
			if i+2 != len(head) || head[i+1] != '\n' {
				return false
			}
			break
		}
		if n == maxHeadLines {
			return false
		}
		nameStart := i
		for i < len(head) && isTokenByte(head[i]) {
			i++
		}
		if i == nameStart || i == len(head) || head[i] != ':' {
			return false
		}
		nameEnd := i
		i++
		for i < len(head) && (head[i] == ' ' || head[i] == '\t') {
			i++
		}
		valStart := i
		// The value runs to the first CR; no control byte but HTAB
		// before it (a token or a cookie is most of a head: the search
		// and the check go a word at a time).
		end := bytes.IndexByte(head[i:], '\r')
		if end < 0 || !httpsyntax.ValidFieldValueBytes(head[i:i+end]) {
			return false
		}
		i += end
		if i+1 >= len(head) || head[i+1] != '\n' {
			return false
		}
		valEnd := i
		for valEnd > valStart && (head[valEnd-1] == ' ' || head[valEnd-1] == '\t') {
			valEnd--
		}
		i += 2
		switch name := head[nameStart:nameEnd]; len(name) {
		case 4:
			if httpsyntax.ASCIIEqualFold(name, "host") {
				if hostIdx >= 0 {
					return false // net/http: 400 too many Host headers
				}
				hostIdx = n
			}
		case 6:
			if httpsyntax.ASCIIEqualFold(name, "expect") || httpsyntax.ASCIIEqualFold(name, "pragma") {
				return false
			}
		case 7:
			if httpsyntax.ASCIIEqualFold(name, "upgrade") {
				return false
			}
			if httpsyntax.ASCIIEqualFold(name, "trailer") {
				if nTr == len(trIdx) {
					return false
				}
				trIdx[nTr] = n
				nTr++
			}
		case 14:
			if httpsyntax.ASCIIEqualFold(name, "content-length") {
				if clIdx >= 0 {
					// net/http keeps one of equal values (fixLength), and
					// refuses differing ones.
					l := lines[clIdx]
					if string(head[l[2]:l[3]]) != string(head[valStart:valEnd]) {
						return false
					}
					continue
				}
				clIdx = n
			}
		case 17:
			if httpsyntax.ASCIIEqualFold(name, "transfer-encoding") {
				// Exactly one, exactly "chunked"; net/http drops the
				// field (parseTransferEncoding).
				if chunked || string(head[valStart:valEnd]) != "chunked" {
					return false
				}
				chunked = true
				continue
			}
		}
		lines[n] = [4]int32{int32(nameStart), int32(nameEnd), int32(valStart), int32(valEnd)}
		n++
	}
	if hostIdx < 0 || lines[hostIdx][2] == lines[hostIdx][3] ||
		!httpguts.ValidHostHeader(string(head[lines[hostIdx][2]:lines[hostIdx][3]])) {
		return false
	}
	var contentLength int64
	switch {
	case chunked && clIdx >= 0:
		return false // net/http drops the length; the guard refuses both
	case chunked:
		contentLength = -1
	case clIdx >= 0:
		// net/http: strconv.ParseUint(v, 10, 63); up to 18 digits here,
		// as the guard.
		v := head[lines[clIdx][2]:lines[clIdx][3]]
		if len(v) == 0 || len(v) > 18 {
			return false
		}
		for _, c := range v {
			if c < '0' || c > '9' {
				return false
			}
			contentLength = contentLength*10 + int64(c-'0')
		}
	}

	s := string(head)
	target := s[targetStart:targetEnd]
	if !httpsyntax.ParseTarget(target, &parts.url) {
		return false
	}
	var trailer http.Header
	if chunked && nTr > 0 {
		var bad bool
		trailer, bad = declaredTrailer(s, lines[:n], trIdx[:nTr])
		if bad {
			return false // net/http: 400 bad trailer key
		}
	}
	// Host is not in the header map (net/http deletes it): it is req.Host.
	if h == nil {
		h = make(http.Header, n-1)
	}
	strs := parts.vals[:]
	if n-1 > len(strs) {
		strs = make([]string, n-1)
	}
	var keyBuf [64]byte
lineLoop:
	for i, l := range lines[:n] {
		if i == hostIdx {
			continue
		}
		if chunked {
			for _, t := range trIdx[:nTr] {
				if i == t {
					continue lineLoop // net/http: Request.Trailer
				}
			}
		}
		key := canonicalKey(s, int(l[0]), int(l[1]), keyBuf[:0])
		value := s[l[2]:l[3]]
		if vv, dup := h[key]; dup {
			h[key] = append(vv, value)
			continue
		}
		vv := strs[:1:1]
		strs = strs[1:]
		vv[0] = value
		h[key] = vv
	}
	host := s[lines[hostIdx][2]:lines[hostIdx][3]]
	*req = http.Request{
		Method:        s[:methodLen],
		URL:           &parts.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: contentLength,
		Host:          host,
		Trailer:       trailer,
		RequestURI:    target,
		Close:         httpguts.HeaderValuesContainsToken(h["Connection"], "close"),
	}
	if chunked {
		parts.te[0] = "chunked"
		req.TransferEncoding = parts.te[:]
	}
	if contentLength == 0 {
		req.Body = http.NoBody
	}
	return true
}

// declaredTrailer is net/http's fixTrailer for a chunked request: the
// names its Trailer fields list, each with no value, or nil when they
// list none; bad when one is a name net/http refuses there.
func declaredTrailer(s string, lines [][4]int32, idx []int) (trailer http.Header, bad bool) {
	for _, i := range idx {
		l := lines[i]
		foreachHeaderElement(s[l[2]:l[3]], func(key string) {
			key = http.CanonicalHeaderKey(key)
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				bad = true
				return
			}
			if trailer == nil {
				trailer = make(http.Header)
			}
			trailer[key] = nil
		})
	}
	return trailer, bad
}

// reqParts are the parts of a taken request that live exactly as long as
// it does, held in its response so that they cost no allocation of their
// own: the URL, and the value slices of up to len(vals) header fields
// (each field's slice is one element of vals, capped, so an append by a
// handler copies rather than writes over the next field's).
type reqParts struct {
	url  url.URL
	vals [16]string
	te   [1]string // TransferEncoding, when chunked
}

// canonicalKey returns s[start:end] in textproto's canonical form (first
// letter and every letter after "-" upper case, the rest lower case): the
// substring itself when it already is, an interned common name, or a new
// string.
func canonicalKey(s string, start, end int, buf []byte) string {
	k := s[start:end]
	upper := true
	canonical := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return k
	}
	buf = append(buf, k...)
	upper = true
	for i, c := range buf {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
		upper = c == '-'
	}
	if v, ok := commonKeys[string(buf)]; ok { // no allocation for the lookup
		return v
	}
	return string(buf)
}

// commonKeys interns the canonical names clients commonly send in lower
// case (Node's http client, curl with -H, load generators).
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Cookie", "Host", "If-Modified-Since", "If-None-Match", "Origin",
		"Referer", "User-Agent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Request-Id", "Traceparent", "Tracestate", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
		"Sec-Fetch-Site", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
		"Upgrade-Insecure-Requests", "Dnt", "Priority", "Range", "If-Range",
	} {
		m[k] = k
	}
	return m
}()

// isTokenByte reports whether c may appear in a header name (RFC 9110
// tchar), the set textproto accepts.
func isTokenByte(c byte) bool {
	return tokenTable[c]
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
