package h1guard

import (
	"bytes"
	"net/http"

	"gatehouse/internal/httpsyntax"
)

// mode is where in the request stream the framer is.
type mode uint8

const (
	modeHead      mode = iota // at or in a request head
	modeBody                  // remain bytes of a Content-Length body
	modeChunkSize             // in a chunk-size line
	modeChunkData             // remain bytes of chunk data
	modeChunkCR               // the CR after chunk data
	modeChunkLF               // the LF after chunk data
	modeTrailer               // the trailer section after the last chunk
	modePass                  // not HTTP/1 any more: pass everything
)

type resKind uint8

const (
	resOK      resKind = iota // every byte given may be delivered
	resMore                   // a head is incomplete: it starts at the index returned
	resRefuse                 // the head at the index returned is refused
	resBadBody                // the body is malformed at the index returned
)

type result struct {
	kind   resKind
	status int
	reason string
}

func refuse(status int, reason string) result {
	return result{kind: resRefuse, status: status, reason: reason}
}

// The longest chunk-size line and trailer section taken: net/http's
// limits are 4096 bytes for each (its bufio buffer).
const (
	maxChunkLine    = 4000
	maxTrailerBytes = 4000
)

// framer follows a stream of requests as net/http's server reads it.
// Every guarded connection keeps one, idle ones too: its fields are
// ordered and sized to keep it small (idle memory per keep-alive
// connection, docs/performance.md).
type framer struct {
	remain uint64 // modeBody, modeChunkData
	h      headState

	// modeChunkSize
	csDigits int32
	csLen    int32
	// modeTrailer
	trLen int32

	mode    mode
	csState uint8 // modeChunkSize: 0 hex digits, 1 whitespace after them, 2 extension, 3 CR seen
	trState uint8 // modeTrailer: 0 line start, 1 in a line, 2 CR in a line, 3 CR at a line start
}

// advance follows b, the bytes after those delivered so far, and returns
// how many of them may be delivered now and why it stopped short.
func (f *framer) advance(b []byte, lim Limits) (int, result) { return f.advanceHeads(b, lim, nil) }

// advanceHeads is advance, calling onHead, if not nil, with the offset in
// b of each head passed (tests; not a field: every connection keeps a
// framer).
func (f *framer) advanceHeads(b []byte, lim Limits, onHead func(off int)) (int, result) {
	i := 0
	for i < len(b) {
		switch f.mode {
		case modePass:
			return len(b), result{}
		case modeHead:
			end, res := f.h.scan(b[i:], lim)
			if res.kind != resOK {
				return i, res
			}
			if onHead != nil {
				onHead(i)
			}
			f.startBody()
			i += end
		case modeBody, modeChunkData:
			n := uint64(len(b) - i)
			if n > f.remain {
				n = f.remain
			}
			i += int(n)
			f.remain -= n
			if f.remain == 0 {
				if f.mode == modeBody {
					f.mode = modeHead
				} else {
					f.mode = modeChunkCR
				}
			}
		case modeChunkCR:
			if b[i] != '\r' {
				return i, result{kind: resBadBody}
			}
			i++
			f.mode = modeChunkLF
		case modeChunkLF:
			if b[i] != '\n' {
				return i, result{kind: resBadBody}
			}
			i++
			f.startChunk()
		case modeChunkSize:
			for ; i < len(b) && f.mode == modeChunkSize; i++ {
				if !f.chunkSizeByte(b[i]) {
					return i, result{kind: resBadBody}
				}
			}
		case modeTrailer:
			for ; i < len(b) && f.mode == modeTrailer; i++ {
				if !f.trailerByte(b[i]) {
					return i, result{kind: resBadBody}
				}
			}
		}
	}
	return i, result{}
}

// startBody sets the framer for the body of the head just passed.
func (f *framer) startBody() {
	h := &f.h
	switch {
	case h.pri && h.lines == 2:
		// "PRI * HTTP/2.0" and no field at all: net/http's HTTP/2
		// preface (Request.isH2Upgrade), served as HTTP/2 or read to the
		// end of the connection as its body. With any field, Host
		// included, it is an HTTP/1 request like another, and framing
		// goes on (a review found the guard switched off by one).
		f.mode = modePass
	case h.te > 0:
		f.startChunk()
	case h.cl > 0 && h.clVal > 0:
		f.mode, f.remain = modeBody, h.clVal
	default:
		f.mode = modeHead
	}
	f.h = headState{}
}

func (f *framer) startChunk() {
	f.mode, f.csState, f.csDigits, f.csLen, f.remain = modeChunkSize, 0, 0, 0, 0
}

// chunkSizeByte takes one byte of a chunk-size line: hex digits (at most
// 16), optional whitespace or a ";" extension, CRLF. It is net/http's
// syntax (readChunkLine, parseHexUint) less what net/http tolerates
// only by accident.
func (f *framer) chunkSizeByte(c byte) bool {
	f.csLen++
	if f.csLen > maxChunkLine {
		return false
	}
	switch f.csState {
	case 0:
		if v, ok := httpsyntax.HexVal(c); ok {
			f.csDigits++
			if f.csDigits > 16 {
				return false
			}
			f.remain = f.remain<<4 | uint64(v)
			return true
		}
		if f.csDigits == 0 {
			return false
		}
		switch c {
		case ';':
			f.csState = 2
		case ' ', '\t':
			f.csState = 1
		case '\r':
			f.csState = 3
		default:
			return false
		}
	case 1:
		switch c {
		case ' ', '\t':
		case '\r':
			f.csState = 3
		default:
			return false
		}
	case 2:
		switch c {
		case '\r':
			f.csState = 3
		case '\n':
			return false
		}
	case 3:
		if c != '\n' {
			return false
		}
		if f.remain == 0 {
			f.mode, f.trState, f.trLen = modeTrailer, 0, 0
		} else {
			f.mode = modeChunkData
		}
	}
	return true
}

// trailerByte takes one byte of the trailer section: field lines ending
// in CRLF, then an empty line.
func (f *framer) trailerByte(c byte) bool {
	f.trLen++
	if f.trLen > maxTrailerBytes {
		return false
	}
	switch f.trState {
	case 0:
		switch c {
		case '\r':
			f.trState = 3
		case ' ', '\t', '\n', ':':
			return false
		default:
			f.trState = 1
		}
	case 1:
		switch c {
		case '\r':
			f.trState = 2
		case '\n':
			return false
		}
	case 2:
		if c != '\n' {
			return false
		}
		f.trState = 0
	case 3:
		if c != '\n' {
			return false
		}
		f.mode = modeHead
	}
	return true
}

// headState is what the framer knows of the head being read. Offsets are
// from the head's first byte, so a head may move (to the hold buffer)
// between calls.
type headState struct {
	pos   int // bytes scanned: whole lines
	lines int
	clVal uint64
	clRaw [20]byte // the first Content-Length value
	clLen uint8
	// te and cl count the Transfer-Encoding and Content-Length fields,
	// up to 2: more than one is all that matters.
	te, cl uint8
	http10 bool
	pri    bool
	teBad  bool
	clBad  bool
}

// scan reads the lines of a head from b (which starts with it), resuming
// after those already read, and returns the head's length when it is
// complete and passes.
func (h *headState) scan(b []byte, lim Limits) (int, result) {
	for {
		rest := b[h.pos:]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			if lim.MaxLineBytes > 0 && len(rest) > lim.MaxLineBytes+1 { // +1: a CR may end it
				return 0, h.lineTooLong()
			}
			if len(b) > lim.MaxHeadBytes {
				return 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
			}
			return 0, result{kind: resMore}
		}
		line := rest[:nl]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		h.pos += nl + 1
		if lim.MaxLineBytes > 0 && len(line) > lim.MaxLineBytes {
			return 0, h.lineTooLong()
		}
		if h.pos > lim.MaxHeadBytes {
			return 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			// RFC 9112 §2.2: a bare CR is refused, not read as a line end.
			return 0, refuse(http.StatusBadRequest, "bare CR in the request head")
		}
		h.lines++
		if h.lines == 1 {
			if len(line) == 0 {
				// An empty line before a request: delivered alone (net/http
				// skips a few after a POST, and refuses them otherwise).
				return h.pos, result{}
			}
			h.requestLine(line)
			continue
		}
		if len(line) == 0 {
			return h.pos, h.finish()
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 9112 §5.2: obs-fold may be refused; a folded framing
			// header is how two parsers are made to disagree.
			return 0, refuse(http.StatusBadRequest, "obsolete line folding in the request head")
		}
		if res := h.field(line); res.kind != resOK {
			return 0, res
		}
	}
}

func (h *headState) lineTooLong() result {
	if h.lines == 0 {
		return refuse(http.StatusRequestURITooLong, "request line too long")
	}
	return refuse(http.StatusRequestHeaderFieldsTooLarge, "request header line too long")
}

// requestLine notes the protocol version, split as net/http splits it:
// method, target and version at the first two spaces.
func (h *headState) requestLine(line []byte) {
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 {
		return // net/http refuses it
	}
	h.http10 = string(proto) == "HTTP/1.0"
	h.pri = string(method) == "PRI" && string(target) == "*" && string(proto) == "HTTP/2.0"
}

// field notes a header field that frames the body.
func (h *headState) field(line []byte) result {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return result{} // net/http refuses it
	}
	name, value := line[:colon], line[colon+1:]
	if c := name[len(name)-1]; c == ' ' || c == '\t' {
		// RFC 9112 §5.1: whitespace before the colon MUST be refused.
		return refuse(http.StatusBadRequest, "whitespace between a header name and its colon")
	}
	switch len(name) {
	case len("transfer-encoding"):
		if !httpsyntax.ASCIIEqualFold(name, "transfer-encoding") {
			return result{}
		}
		h.te = min(h.te+1, 2)
		if bytes.IndexByte(value, '\t') >= 0 || !httpsyntax.ASCIIEqualFold(trimOWS(value), "chunked") {
			h.teBad = true
		}
	case len("content-length"):
		if !httpsyntax.ASCIIEqualFold(name, "content-length") {
			return result{}
		}
		h.cl = min(h.cl+1, 2)
		v := trimOWS(value)
		n, ok := parseDecimal(v)
		switch {
		case !ok:
			h.clBad = true
		case h.cl == 1:
			h.clVal, h.clLen = n, uint8(copy(h.clRaw[:], v)) // at most 18 digits (parseDecimal)
		case string(v) != string(h.clRaw[:h.clLen]):
			h.clBad = true // net/http refuses differing values too
		}
	}
	return result{}
}

// finish decides on a complete head (RFC 9112 §6.1, §6.3).
func (h *headState) finish() result {
	switch {
	case h.te > 0 && h.http10:
		return refuse(http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
	case h.te > 1:
		return refuse(http.StatusBadRequest, "more than one Transfer-Encoding field")
	case h.teBad:
		return refuse(http.StatusBadRequest, "Transfer-Encoding other than chunked")
	case h.te > 0 && h.cl > 0:
		return refuse(http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
	case h.clBad:
		return refuse(http.StatusBadRequest, "invalid Content-Length")
	}
	return result{}
}

// parseDecimal parses a Content-Length value: 1 to 18 digits, nothing else.
func parseDecimal(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
