package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"gatehouse/internal/httpsyntax"
)

// bufferBeforeChunkingSize is net/http's: a handler's first output is
// held up to this much, so a short body gets a Content-Length (and a
// sniffed Content-Type) instead of chunked encoding.
const bufferBeforeChunkingSize = 2048

// response is the http.ResponseWriter of one request. It writes what
// net/http's server would write for the same handler calls, byte for byte
// apart from the Date value (TestResponsesMatchNetHTTP): the same status
// line, header order, Content-Length computed for a short body that ends
// with the handler, Content-Type sniffing, chunked encoding, trailers,
// "Connection: close", 1xx responses, and what is done with a request
// body the handler left unread (read and discarded before the head, up to
// maxPostHandlerReadBytes; more, and the connection closes after the
// response). It is a port of net/http's response and chunkWriter for the
// requests this server takes (HTTP/1.1, no Expect), so the parts about
// HTTP/1.0 keep-alive and 100-continue are left out.
//
// One addition: when the head cannot depend on the body (a valid
// Content-Length and a Content-Type, or a status without a body) nor on
// the request body (none, or read to its end or closed), it is written at
// WriteHeader and the body goes straight to the connection's buffer,
// without net/http's copy of the header map or its 2048-byte buffer. A
// proxied response nearly always has that shape. The request body is then
// closed when net/http would have written the head (deferClose).
type response struct {
	c     *conn
	req   http.Request // the handler's request
	ctx   reqContext   // the request's context, when the server uses one (conn.plainCtx)
	parts reqParts     // the request's URL and header value slices
	body  body         // the request's Body, when it has one (body.c set)

	handlerHeader http.Header // nil until Header or AdoptHeader
	// cwHeader is net/http's chunkWriter.header: nil, or the header as it
	// was when the handler called WriteHeader (the handler may change the
	// map afterwards; only trailers are read from it at the end).
	cwHeader http.Header

	calledHeader bool // the handler called Header before WriteHeader
	// pooledHeader: handlerHeader came from the server's pool (Header),
	// and goes back to it once the response is finished (releaseHeader).
	pooledHeader    bool
	wroteHeader     bool // WriteHeader called (logically written)
	headerSent      bool // the head is in the connection's buffer
	direct          bool // the head was written at WriteHeader; body writes skip pre
	chunking        bool
	handlerDone     bool
	closeAfterReply bool
	fullDuplex      bool // EnableFullDuplex: the request body is left alone at the head
	// requestBodyLimitHit: more than maxPostHandlerReadBytes of the
	// request body were left unread; the connection closes after a
	// half-close (conn.closeWriteAndWait).
	requestBodyLimitHit bool
	// deferClose: the head was written at WriteHeader (direct) with the
	// request body at its end; it is closed when net/http would have
	// written the head: once more than its 2048-byte buffer is written, at
	// a flush, or at the end (settleBody).
	deferClose bool
	// wantsClose is net/http's request.wantsClose, read before the
	// handler runs (it may edit the request's header): Request.Close, or
	// a "close" token in the first Connection field, split at spaces too.
	wantsClose bool

	status        int
	contentLength int64 // -1 when unknown
	written       int64
	buffered      int64 // with deferClose: what net/http's 2048-byte buffer would hold

	pre      *bufio.Writer // net/http's response.w: buffers up to 2048 bytes before the head is final
	cw       chunkWriter
	trailers []string

	statusBuf [3]byte
	clenBuf   [20]byte
	hexBuf    [18]byte
}

// chunkWriter is what pre flushes into: it finalizes and writes the head
// on its first write, then frames chunks when chunking.
type chunkWriter struct{ res *response }

func (cw *chunkWriter) Write(p []byte) (int, error) { return cw.res.cwWrite(p) }

var (
	crlf                  = []byte("\r\n")
	colonSpace            = []byte(": ")
	excludedHeadersNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}
)

func (w *response) Header() http.Header {
	if w.handlerHeader == nil {
		w.handlerHeader, w.pooledHeader = w.c.srv.getHeader(), true
	}
	if w.cwHeader == nil && w.wroteHeader && !w.headerSent {
		// Between logically writing the head and physically writing it:
		// snapshot what was written (net/http does the same).
		w.cwHeader = w.handlerHeader.Clone()
	}
	w.calledHeader = true
	return w.handlerHeader
}

// AdoptHeader makes h the response's header map, as if the handler had
// filled the map Header returns, without a copy: for a proxy whose
// upstream response header is a map it owns. It reports false, changing
// nothing, once Header has been called or the head written.
func (w *response) AdoptHeader(h http.Header) bool {
	if w.calledHeader || w.wroteHeader || w.handlerHeader != nil || h == nil {
		return false
	}
	w.handlerHeader = h
	w.calledHeader = true
	return true
}

// EmptyHeader returns the response's header map, the one Header returns,
// for a proxy to read its upstream response's fields into, when nothing
// is in it yet and the head is unwritten: a pooled map, so that handing a
// response over costs no map at all (AdoptHeader's counterpart for a
// response the proxy parses itself). It returns nil otherwise. The proxy
// must empty the map again if it does not use it for its response.
func (w *response) EmptyHeader() http.Header {
	if w.wroteHeader || w.handlerDone {
		return nil
	}
	if h := w.Header(); len(h) == 0 {
		return h
	}
	return nil
}

// releaseHeader gives the response's header map back to the server's
// pool, once the handler has returned normally and the response is
// written: the handler may no longer use its ResponseWriter, the map
// included (net/http's contract). A map grown past maxPooledFields, or
// one the handler handed over (AdoptHeader), is left to the collector.
func (w *response) releaseHeader() {
	h := w.handlerHeader
	w.handlerHeader = nil
	if !w.pooledHeader || len(h) > maxPooledFields {
		return
	}
	w.pooledHeader = false
	clear(h)
	w.c.srv.headers.Put(h)
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.srv.logf("http: superfluous response.WriteHeader call (status %d)", code)
		return
	}
	// As net/http (issue 22880): any three digits, or a panic.
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	bw := w.c.bw
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// Informational: written at once; the header map is not cleared
		// (RFC 8297).
		writeStatusLine(bw, code, w.statusBuf[:])
		writeFields(bw, w.handlerHeader, excludedHeadersNoBody)
		_, _ = bw.Write(crlf)
		_ = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.handlerHeader

	clInvalid := false
	if cl := hget(h, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			clInvalid = true
		}
	}
	if (!bodyAllowedForStatus(code) ||
		w.contentLength != -1 && hget(h, "Transfer-Encoding") == "" &&
			(hhas(h, "Content-Type") || h.Get("Content-Encoding") != "")) && w.bodySettled() {
		if clInvalid {
			w.c.srv.logf("http: invalid Content-Length of %q", hget(h, "Content-Length"))
			h.Del("Content-Length")
		}
		w.direct = true
		if w.calledHeader {
			w.cwHeader = h
		}
		w.writeHeader(nil, false)
		w.cwHeader = nil
		return
	}
	if w.calledHeader && w.cwHeader == nil {
		w.cwHeader = h.Clone()
	}
	if clInvalid {
		w.c.srv.logf("http: invalid Content-Length of %q", hget(h, "Content-Length"))
		h.Del("Content-Length")
	}
}

func (w *response) Write(p []byte) (int, error) { return w.write(len(p), p, "") }

func (w *response) WriteString(s string) (int, error) { return w.write(len(s), nil, s) }

func (w *response) write(lenData int, dataB []byte, dataS string) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if lenData == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(lenData)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.direct {
		if w.deferClose {
			if w.buffered += int64(lenData); w.buffered > bufferBeforeChunkingSize {
				w.settleBody() // net/http's buffer would flush, and write the head, now
			}
		}
		if w.req.Method == http.MethodHead {
			return lenData, nil
		}
		var n int
		var err error
		if dataB != nil {
			n, err = w.c.bw.Write(dataB)
		} else {
			n, err = w.c.bw.WriteString(dataS)
		}
		if err != nil {
			w.c.nc.Close()
		}
		return n, err
	}
	if w.pre == nil {
		w.pre = w.c.srv.getPre(&w.cw)
	}
	if dataB != nil {
		return w.pre.Write(dataB)
	}
	return w.pre.WriteString(dataS)
}

// cwWrite is net/http's chunkWriter.Write.
func (w *response) cwWrite(p []byte) (n int, err error) {
	if !w.headerSent {
		w.writeHeader(p, w.cwHeader != nil)
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil // eat writes
	}
	bw := w.c.bw
	if w.chunking {
		b := strconv.AppendInt(w.hexBuf[:0], int64(len(p)), 16)
		b = append(b, '\r', '\n')
		if _, err = bw.Write(b); err != nil {
			w.c.nc.Close()
			return 0, err
		}
	}
	n, err = bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.Write(crlf)
	}
	if err != nil {
		w.c.nc.Close()
	}
	return n, err
}

// FlushError implements the interface http.ResponseController looks for.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	var err error
	if w.pre != nil {
		err = w.pre.Flush()
	}
	if !w.headerSent {
		w.writeHeader(nil, w.cwHeader != nil)
	}
	w.settleBody()
	if e2 := w.c.bw.Flush(); err == nil {
		err = e2
	}
	return err
}

// Flush implements http.Flusher.
func (w *response) Flush() { _ = w.FlushError() }

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex are what
// http.ResponseController looks for, as on net/http's response.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.rdlStale.Store(true) // the handler's: not the idle wait's
	return w.c.nc.SetReadDeadline(t)
}
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }
func (w *response) EnableFullDuplex() error            { w.fullDuplex = true; return nil }

// finish is net/http's finishRequest: after the handler returns, the head
// (if still unwritten), the buffered body, the last chunk and trailers go
// out, and then the request body is closed (what is left of it read, up
// to maxPostHandlerReadBytes).
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.pre != nil {
		_ = w.pre.Flush()
		w.c.srv.putPre(w.pre)
		w.pre = nil
	}
	if !w.headerSent {
		w.writeHeader(nil, w.cwHeader != nil)
	}
	bw := w.c.bw
	if w.chunking {
		_, _ = bw.WriteString("0\r\n")
		if t := w.finalTrailers(); t != nil {
			writeFields(bw, t, nil)
		}
		_, _ = bw.WriteString("\r\n")
	}
	w.settleBody()
	_ = bw.Flush()
	_ = w.reqBody().Close()
}

// shouldReuseConnection is net/http's, after the handler is done (finish).
func (w *response) shouldReuseConnection() bool {
	if w.closeAfterReply {
		return false
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false // did not write what it declared: the stream is out of step
	}
	if w.c.werr != nil || w.closedRequestBodyEarly() {
		return false
	}
	// Stricter than net/http, which would go on after a read error in
	// closing a body it had not discarded at the head (a full-duplex
	// handler's): where the next request starts is not known then.
	if w.body.c != nil && !w.body.readToEnd() {
		return false
	}
	return true
}

// closedRequestBodyEarly is net/http's: the body (still Request.Body)
// was closed with more than maxPostHandlerReadBytes left.
func (w *response) closedRequestBodyEarly() bool {
	b, ok := w.req.Body.(*body)
	return ok && b.didEarlyClose()
}

// bodySettled reports whether the request body is where reading what is
// left of it at the head (discardBody) reads nothing: none, read to its
// end, or closed; or it is left alone (EnableFullDuplex).
func (w *response) bodySettled() bool {
	if w.req.ContentLength == 0 || w.fullDuplex {
		return true
	}
	return w.body.c == nil || w.body.settled()
}

// reqBody is net/http's response.reqBody: the request's Body as the
// server made it (the handler may replace Request.Body). A method, not a
// field: the response fits a 1024-byte size class.
func (w *response) reqBody() io.ReadCloser {
	if w.body.c != nil {
		return &w.body
	}
	return http.NoBody
}

// discardBody is what net/http's chunkWriter.writeHeader does with a
// request body the handler may have left unread, before the head goes
// out (Go issue 15527: clients that send a whole request before reading
// the response): the rest is read and discarded, up to
// maxPostHandlerReadBytes, and the body closed; it reports tooBig when
// more is left (the connection then closes after the response). A read
// error closes the connection too: whatever remains must not be read as
// a request.
func (w *response) discardBody() (tooBig bool) {
	discard := false
	switch b := w.req.Body.(type) {
	case *body:
		b.mu.Lock()
		switch {
		case b.closed:
			if !b.sawEOF {
				w.closeAfterReply = true // closed after a read error
			}
		case b.unreadLocked() >= maxPostHandlerReadBytes:
			tooBig = true
		default:
			discard = true
		}
		b.mu.Unlock()
	default:
		discard = true
	}
	if !discard {
		return tooBig
	}
	_, err := io.CopyN(io.Discard, w.reqBody(), maxPostHandlerReadBytes+1)
	switch err { //nolint:errorlint // net/http's comparisons, exactly
	case nil:
		return true // even more is left
	case http.ErrBodyReadAfterClose:
		// Read and closed already.
	case io.EOF:
		if w.direct {
			// The head is written early (see response): the body, at its
			// end, is closed when net/http would have written it.
			w.deferClose = true
		} else if w.reqBody().Close() != nil {
			w.closeAfterReply = true
		}
	default:
		w.closeAfterReply = true
	}
	return false
}

// settleBody closes the request body if discardBody left that for later
// (deferClose): it is at its end, so nothing is read.
func (w *response) settleBody() {
	if w.deferClose {
		w.deferClose = false
		_ = w.reqBody().Close()
	}
}

func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return // forbidden by RFC 9110 §6.5.1
	}
	w.trailers = append(w.trailers, k)
}

// extraHeader is net/http's: the fields writeHeader adds, written after
// the handler's own in this fixed order.
type extraHeader struct {
	contentType      string
	connection       string
	transferEncoding string
	date             []byte
	contentLength    []byte
}

func (h extraHeader) write(w *bufio.Writer) {
	if h.date != nil {
		_, _ = w.WriteString("Date: ")
		_, _ = w.Write(h.date)
		_, _ = w.Write(crlf)
	}
	if h.contentLength != nil {
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.Write(h.contentLength)
		_, _ = w.Write(crlf)
	}
	for i, v := range [3]string{h.contentType, h.connection, h.transferEncoding} {
		if v != "" {
			_, _ = w.WriteString([3]string{"Content-Type", "Connection", "Transfer-Encoding"}[i])
			_, _ = w.Write(colonSpace)
			_, _ = w.WriteString(v)
			_, _ = w.Write(crlf)
		}
	}
}

// writeHeader is net/http's chunkWriter.writeHeader: it finalizes the
// head and writes it to the connection's buffer. p is the body's first
// bytes, sniffed for a Content-Type and, when the handler is done, its
// whole length. owned says whether cwHeader is this response's own copy,
// which may be edited, rather than the handler's map, from which fields
// are left out instead.
func (w *response) writeHeader(p []byte, owned bool) {
	if w.headerSent {
		return
	}
	w.headerSent = true
	keepAlivesEnabled := w.c.srv.doKeepAlives()
	isHEAD := w.req.Method == http.MethodHead

	header := w.cwHeader
	if header == nil {
		header = w.handlerHeader
	}
	var excludeHeader map[string]bool
	delHeader := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if excludeHeader == nil {
			excludeHeader = make(map[string]bool)
		}
		excludeHeader[key] = true
	}
	var setHeader extraHeader

	// The "Trailer:foo" keys are not written (http.TrailerPrefix).
	trailers := false
	for k := range w.cwHeader {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if excludeHeader == nil {
				excludeHeader = make(map[string]bool)
			}
			excludeHeader[k] = true
			trailers = true
		}
	}
	for _, v := range w.cwHeader["Trailer"] {
		trailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}

	te := hget(header, "Transfer-Encoding")
	hasTE := te != ""

	// A handler that is done and never sent a Content-Length: this is
	// the whole body, so say how long it is (not for HEAD with nothing
	// written: the handler may just have skipped the body).
	if w.handlerDone && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !hhas(header, "Content-Length") && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setHeader.contentLength = strconv.AppendInt(w.clenBuf[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1

	if w.wantsClose {
		w.closeAfterReply = true
	}
	if hget(header, "Connection") == "close" || !keepAlivesEnabled {
		w.closeAfterReply = true
	}

	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex && w.discardBody() {
		// net/http's requestTooLarge (the head is written: the handler's
		// header is left as it is).
		w.closeAfterReply = true
		w.requestBodyLimitHit = true
		delHeader("Connection")
		setHeader.connection = "close"
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		// Not sniffed when the body is encoded (Go issue 31753).
		hasCE := header.Get("Content-Encoding") != ""
		if !hasCE && !haveType && !hasTE && len(p) > 0 {
			setHeader.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(code) {
			delHeader(k)
		}
	}

	if !hhas(header, "Date") {
		setHeader.date = w.c.srv.date()
	}

	if hasCL && hasTE && te != "identity" {
		w.c.srv.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		delHeader("Content-Length")
		hasCL = false
	}

	switch {
	case isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		delHeader("Transfer-Encoding")
	case hasCL:
		delHeader("Transfer-Encoding")
	case hasTE && te == "identity":
		// No length and no chunking: the body ends when the connection
		// does (as for Server-Sent Events in old recommendations).
		w.chunking = false
		w.closeAfterReply = true
		delHeader("Transfer-Encoding")
	default:
		w.chunking = true
		setHeader.transferEncoding = "chunked"
		if hasTE && te == "chunked" {
			delHeader("Transfer-Encoding") // written once, below
		}
	}
	if w.chunking {
		delHeader("Content-Length")
	}

	// Go issue 36381: a successful protocol switch keeps its Connection.
	if w.closeAfterReply &&
		(!keepAlivesEnabled || !hasToken(hget(w.cwHeader, "Connection"), "close")) &&
		!isProtocolSwitchResponse(code, header) {
		delHeader("Connection")
		setHeader.connection = "close"
	}

	bw := w.c.bw
	writeStatusLine(bw, code, w.statusBuf[:])
	writeFields(bw, w.cwHeader, excludeHeader)
	setHeader.write(bw)
	_, _ = bw.Write(crlf)
}

// writeFields writes h's fields but those in exclude, as
// http.Header.WriteSubset does (sorted by name; invalid names left out;
// CR and LF in values turned into spaces, and values trimmed), without
// its sort callback and string replacer: the common value has neither.
// Names are sorted with their values beside them, so no name is looked
// up again after the sort.
func writeFields(bw *bufio.Writer, h http.Header, exclude map[string]bool) {
	var stack [24]headerField
	fields := stack[:0]
	for k, vv := range h {
		if !exclude[k] {
			fields = append(fields, headerField{k, vv})
		}
	}
	sortFields(fields)
	for _, f := range fields {
		if !httpguts.ValidHeaderFieldName(f.name) {
			continue // as net/http: dropped rather than written broken
		}
		for _, v := range f.vals {
			if strings.ContainsAny(v, "\r\n") {
				b := []byte(v) // bytes, not runes: invalid UTF-8 stays as it is
				for i, c := range b {
					if c == '\r' || c == '\n' {
						b[i] = ' '
					}
				}
				v = string(b)
			}
			v = textproto.TrimString(v)
			_, _ = bw.WriteString(f.name)
			_, _ = bw.Write(colonSpace)
			_, _ = bw.WriteString(v)
			_, _ = bw.Write(crlf)
		}
	}
}

// headerField is one name of a header map and its values.
type headerField struct {
	name string
	vals []string
}

// sortFields sorts fields by name: by insertion for a head's usual dozen
// or two, as slices.Sort does below 12 elements.
func sortFields(fields []headerField) {
	if len(fields) > 32 {
		slices.SortFunc(fields, func(a, b headerField) int { return strings.Compare(a.name, b.name) })
		return
	}
	for i := 1; i < len(fields); i++ {
		for j := i; j > 0 && fields[j].name < fields[j-1].name; j-- {
			fields[j], fields[j-1] = fields[j-1], fields[j]
		}
	}
}

func writeStatusLine(bw *bufio.Writer, code int, scratch []byte) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		_, _ = bw.Write(strconv.AppendInt(scratch[:0], int64(code), 10))
		_ = bw.WriteByte(' ')
		_, _ = bw.WriteString(text)
		_, _ = bw.WriteString("\r\n")
		return
	}
	fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

var (
	suppressedHeaders304    = []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	suppressedHeadersNoBody = []string{"Content-Length", "Transfer-Encoding"}
)

func suppressedHeaders(status int) []string {
	switch {
	case status == 304:
		return suppressedHeaders304 // RFC 9110 §15.4.5
	case !bodyAllowedForStatus(status):
		return suppressedHeadersNoBody
	}
	return nil
}

func isProtocolSwitchResponse(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && h.Get("Upgrade") != "" &&
		httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

// hget and hhas are net/http's Header.get and has: key is canonical.
func hget(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func hhas(h http.Header, key string) bool {
	_, ok := h[key]
	return ok
}

// foreachHeaderElement calls fn for each non-empty element of the
// comma-separated list v (RFC 9110 §5.6.1).
func foreachHeaderElement(v string, fn func(string)) {
	v = textproto.TrimString(v)
	if v == "" {
		return
	}
	if !strings.Contains(v, ",") {
		fn(v)
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = textproto.TrimString(f); f != "" {
			fn(f)
		}
	}
}

// hasToken reports whether token (lower case) appears in v, ASCII
// case-insensitively, at space, comma or tab boundaries (net/http's).
func hasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if httpsyntax.ASCIIEqualFold([]byte(v[sp:sp+len(token)]), token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }
