package h2server

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// handlerChunk is the response buffer per stream: body bytes collect
// here until it fills, the handler flushes, or the handler returns
// (net/http's size; a response smaller than it goes out whole, with its
// Content-Length).
const handlerChunk = 4 << 10

// responseWriter is a stream's http.ResponseWriter. It follows
// net/http's HTTP/2 responseWriterState: the header map is copied at
// WriteHeader, HEADERS goes out with the first body chunk (so a small
// response is HEADERS and DATA in one write), Content-Type is sniffed
// from the first chunk, and trailers are declared by the Trailer field
// or set with http.TrailerPrefix.
//
// Its methods run on the handler's goroutine only.
type responseWriter struct {
	st           *stream
	bw           *bufio.Writer // over chunkWriter{rw}
	handlerHdr   http.Header
	mapHdr       *headerMap  // what handlerHdr came from (nil: adopted), returned at release
	snap         *headerList // the header as WriteHeader found it, returned at release
	status       int
	wroteHeader  bool
	sentHeader   bool
	handlerDone_ bool
	declCL       int64 // Content-Length declared at WriteHeader, -1 if none
	wroteBytes   int64
	trailers     []string
}

var bufWriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, handlerChunk) }}

// headerMap is a handler's response header map, kept between
// responses: a proxied response has more than the eight fields a small
// map holds, and growing one was three allocations each time. headerList
// is the snapshot taken of it at WriteHeader. Both go back to their pools
// once the handler has returned and its response is written: a handler
// may not use its ResponseWriter, nor so its header map, after it
// returns (net/http's contract; h1server keeps a connection's map on the
// same terms).
type headerMap struct{ h http.Header }

// headerList is a final response's header as it was at WriteHeader
// (net/http copies the map there: what a handler changes afterwards does
// not reach the client, trailers aside). It is a list, not a map: it is
// only walked once, to encode it, and the few fields the server itself
// looks at are found while it is taken. Copying into a map hashed every
// field again (2 % of the proxy's CPU over HTTP/2, with the walk).
type headerList struct {
	fields []listField
	vals   []string // what fields' values are copied into
	// The index in fields of each field the server reads, -1 if absent.
	cl, ctype, cenc, date, trailer, connection int
}

// listField is one name and its values; a field the server has taken
// out (Content-Length, Connection) has k "".
type listField struct {
	k  string
	vv []string
	// Where take copied the values, while it copies: vv is vals[at:at+n]
	// when vals is set (a nil vv stays nil).
	at, n int32
	vals  bool
}

// maxPooledFields: a map or list that held more than this is let go
// rather than kept at its size.
const maxPooledFields = 32

var (
	headerPool = sync.Pool{New: func() any { return &headerMap{h: make(http.Header, 16)} }}
	listPool   = sync.Pool{New: func() any { return &headerList{fields: make([]listField, 0, 16)} }}
)

// take makes l a copy of src, values included (as http.Header.Clone: nil
// values stay nil, so that a field set to nil, Date's way of asking for
// none, is still there). One walk of the map: the values are appended to
// l.vals, and the fields' slices of it are cut once it has stopped
// growing (a first walk to count them cost as much as the copy).
func (l *headerList) take(src http.Header) {
	vals := l.vals[:0]
	if vals == nil {
		vals = make([]string, 0, 16)
	}
	l.fields = l.fields[:0]
	l.cl, l.ctype, l.cenc, l.date, l.trailer, l.connection = -1, -1, -1, -1, -1, -1
	for k, vv := range src {
		switch k {
		case "Content-Length":
			l.cl = len(l.fields)
		case "Content-Type":
			l.ctype = len(l.fields)
		case "Content-Encoding":
			l.cenc = len(l.fields)
		case "Date":
			l.date = len(l.fields)
		case "Trailer":
			l.trailer = len(l.fields)
		case "Connection":
			l.connection = len(l.fields)
		}
		if vv == nil {
			l.fields = append(l.fields, listField{k: k})
			continue
		}
		l.fields = append(l.fields, listField{k: k, at: int32(len(vals)), n: int32(len(vv)), vals: true})
		vals = append(vals, vv...)
	}
	for i := range l.fields {
		if f := &l.fields[i]; f.vals {
			end := f.at + f.n
			f.vv = vals[f.at:end:end]
		}
	}
	l.vals = vals
}

// first is the first value of the field at index i, "" if none.
func (l *headerList) first(i int) string {
	if i < 0 || len(l.fields[i].vv) == 0 {
		return ""
	}
	return l.fields[i].vv[0]
}

// drop takes the field at index i out of what is sent.
func (l *headerList) drop(i int) {
	if i >= 0 {
		l.fields[i] = listField{}
	}
}

// release returns the response's header map and snapshot to their
// pools; the handler has returned and nothing of the response is left
// to write.
func (rw *responseWriter) release() {
	if m := rw.mapHdr; m != nil {
		rw.mapHdr = nil
		if len(m.h) <= maxPooledFields {
			clear(m.h)
			headerPool.Put(m)
		}
	}
	if l := rw.snap; l != nil {
		rw.snap = nil
		if len(l.fields) <= maxPooledFields && cap(l.vals) <= 4*maxPooledFields {
			clear(l.fields[:cap(l.fields)])
			l.fields = l.fields[:0]
			clear(l.vals)
			listPool.Put(l)
		}
	}
	rw.handlerHdr = nil
}

// noFields is the snapshot of an empty header: nothing to send, no
// field found (never written to: drop(-1) does nothing).
var noFields = headerList{cl: -1, ctype: -1, cenc: -1, date: -1, trailer: -1, connection: -1}

type chunkWriter struct{ rw *responseWriter }

func (cw chunkWriter) Write(p []byte) (int, error) { return cw.rw.writeChunk(p) }

func (rw *responseWriter) buf() *bufio.Writer {
	if rw.bw == nil {
		rw.bw = bufWriterPool.Get().(*bufio.Writer)
		rw.bw.Reset(chunkWriter{rw})
	}
	return rw.bw
}

func (rw *responseWriter) Header() http.Header {
	if rw.handlerDone_ {
		panic("Header called after Handler finished")
	}
	if rw.handlerHdr == nil {
		rw.mapHdr = headerPool.Get().(*headerMap)
		rw.handlerHdr = rw.mapHdr.h
	}
	return rw.handlerHdr
}

// AdoptHeader makes h the response's header map, as if the handler had
// filled the map Header returns, without a copy: for a proxy whose
// upstream response header is a map it owns (h1server's response has
// the same method). It reports false, changing nothing, once Header has
// been called or the header written.
func (rw *responseWriter) AdoptHeader(h http.Header) bool {
	if rw.handlerHdr != nil || rw.wroteHeader || rw.handlerDone_ || h == nil {
		return false
	}
	rw.handlerHdr = h
	return true
}

// EmptyHeader returns the response's header map, the one Header returns,
// for a proxy to read its upstream response's fields into, when nothing
// is in it yet and the header is unwritten: a pooled map, so that handing
// a response over costs no map at all (AdoptHeader's counterpart for a
// response the proxy parses itself; h1server's response has the same
// method). It returns nil otherwise. The proxy must empty the map again
// if it does not use it for its response.
func (rw *responseWriter) EmptyHeader() http.Header {
	if rw.wroteHeader || rw.handlerDone_ {
		return nil
	}
	if h := rw.Header(); len(h) == 0 {
		return h
	}
	return nil
}

func (rw *responseWriter) WriteHeader(code int) {
	if rw.handlerDone_ {
		panic("WriteHeader called after Handler finished")
	}
	rw.writeHeader(code)
}

func (rw *responseWriter) writeHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if rw.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 {
		// Informational: sent now, the header map as it is (RFC 8297),
		// without framing fields.
		h := rw.handlerHdr
		_, cl := h["Content-Length"]
		_, te := h["Transfer-Encoding"]
		if cl || te {
			h = h.Clone()
			h.Del("Content-Length")
			h.Del("Transfer-Encoding")
		}
		_ = rw.st.c.writeHeaders(rw.st, &resHeaders{status: code, h: h}, true)
		return
	}
	rw.wroteHeader = true
	rw.status = code
	rw.declCL = -1
	if len(rw.handlerHdr) > 0 {
		rw.snap = listPool.Get().(*headerList)
		rw.snap.take(rw.handlerHdr)
		if v := rw.snap.first(rw.snap.cl); v != "" {
			if cl, err := strconv.ParseUint(v, 10, 63); err == nil {
				rw.declCL = int64(cl)
			}
		}
	}
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if err := rw.beforeWrite(len(p)); err != nil {
		return 0, err
	}
	return rw.buf().Write(p)
}

func (rw *responseWriter) WriteString(s string) (int, error) {
	if err := rw.beforeWrite(len(s)); err != nil {
		return 0, err
	}
	return rw.buf().WriteString(s)
}

func (rw *responseWriter) beforeWrite(n int) error {
	if rw.handlerDone_ {
		panic("Write called after Handler finished")
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !bodyAllowedForStatus(rw.status) {
		return http.ErrBodyNotAllowed
	}
	// Never more than the declared Content-Length: DATA beyond it is a
	// malformed response (RFC 9113 §8.1.1), and a client that turns it
	// into HTTP/1.1 would take the excess for the next response. As
	// net/http's HTTP/1 server refuses such a write; its HTTP/2 server
	// checks only once the header has gone out.
	if rw.declCL >= 0 && rw.wroteBytes+int64(n) > rw.declCL {
		return http.ErrContentLength
	}
	rw.wroteBytes += int64(n)
	return nil
}

func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError sends the header, if not yet sent, and what is buffered.
func (rw *responseWriter) FlushError() error {
	var err error
	if rw.bw != nil && rw.bw.Buffered() > 0 {
		err = rw.bw.Flush()
	} else {
		// The bufio.Writer does not call writeChunk with nothing
		// buffered; the header (or the end of the stream) still has to
		// go out.
		_, err = rw.writeChunk(nil)
	}
	return err
}

// SetReadDeadline bounds the handler's reads of the request body; a
// deadline in the past fails a read in progress at once.
func (rw *responseWriter) SetReadDeadline(t time.Time) error {
	c := rw.st.c
	c.mu.Lock()
	rw.st.readDL = t
	rw.st.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds the handler's writes' waits (for flow-control
// window and for the socket); one that expires resets the stream, as in
// net/http. A deadline in the past resets it at once.
func (rw *responseWriter) SetWriteDeadline(t time.Time) error {
	c := rw.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	rw.st.writeDL = t
	if !t.IsZero() && time.Until(t) <= 0 { // Until: one monotonic read, for a t from time.Now
		c.resetLocked(rw.st.id, http2.ErrCodeInternal)
		c.kickLocked()
		c.cond.Broadcast()
		return nil
	}
	// Set from another goroutine while the handler waits: it waits again
	// until the new deadline. Otherwise no one waits for it, and waking
	// every waiter of the connection was for nothing (a proxy sets it on
	// every response).
	if rw.st.writeWaiting {
		c.cond.Broadcast()
	}
	return nil
}

// EnableFullDuplex: HTTP/2 always is.
func (rw *responseWriter) EnableFullDuplex() error { return nil }

// handlerDone sends what remains once the handler has returned: the
// header if not yet sent, the buffered body, END_STREAM, the trailers.
func (rw *responseWriter) handlerDone() {
	rw.handlerDone_ = true
	_ = rw.FlushError()
	if bw := rw.bw; bw != nil {
		rw.bw = nil
		bw.Reset(nil)
		bufWriterPool.Put(bw)
	}
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

// writeChunk sends p, the buffered body (or nothing, on a flush), with
// the header first if it has not gone out yet. It is net/http's
// responseWriterState.writeChunk, but appends every frame of the chunk
// and then writes them together.
func (rw *responseWriter) writeChunk(p []byte) (int, error) {
	st := rw.st
	c := st.c
	if !rw.wroteHeader {
		rw.writeHeader(http.StatusOK)
	}
	if rw.handlerDone_ {
		rw.promoteUndeclaredTrailers()
	}
	isHead := st.req.Method == http.MethodHead
	// short: the handler is done with fewer bytes than it declared.
	short := rw.handlerDone_ && !isHead && bodyAllowedForStatus(rw.status) &&
		rw.declCL >= 0 && rw.wroteBytes < rw.declCL
	flushed := false
	if !rw.sentHeader {
		rw.sentHeader = true
		snap := rw.snap
		if snap == nil {
			snap = &noFields
		}
		// As net/http: a Content-Length with a value is sent as the
		// server checked it, or not at all; one present without a value
		// (set to nil) asks for none to be added.
		var ctype, clen string
		hasCL := snap.cl >= 0
		if clen = snap.first(snap.cl); clen != "" {
			snap.drop(snap.cl)
			hasCL = false
			if _, err := strconv.ParseUint(clen, 10, 63); err != nil {
				clen = ""
			}
		}
		if !hasCL && clen == "" && rw.handlerDone_ && bodyAllowedForStatus(rw.status) && (len(p) > 0 || !isHead) {
			clen = strconv.Itoa(len(p))
		}
		if snap.first(snap.cenc) == "" && snap.ctype < 0 && bodyAllowedForStatus(rw.status) && len(p) > 0 {
			ctype = http.DetectContentType(p)
		}
		var date string
		if snap.date < 0 {
			date = c.srv.httpDate()
		}
		if snap.trailer >= 0 {
			for _, v := range snap.fields[snap.trailer].vv {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						rw.declareTrailer(k)
					}
				}
			}
		}
		// "Connection: close" asks, as in HTTP/1, for the connection
		// to end: GOAWAY, then close once idle.
		if snap.connection >= 0 {
			v := snap.first(snap.connection)
			snap.drop(snap.connection)
			if v == "close" {
				c.mu.Lock()
				c.goAwayLocked(http2.ErrCodeNo)
				c.mu.Unlock()
			}
		}
		endStream := (rw.handlerDone_ && len(rw.trailers) == 0 && len(p) == 0 && !short) || isHead
		more := !endStream && !isHead && (len(p) > 0 || rw.handlerDone_)
		if err := c.writeHeaders(st, &resHeaders{
			status: rw.status, list: snap.fields, endStream: endStream,
			ctype: ctype, clen: clen, dat: date,
		}, !more); err != nil {
			return 0, err
		}
		flushed = !more
		if endStream {
			return 0, nil
		}
	}
	if isHead {
		return len(p), nil
	}
	if len(p) == 0 && !rw.handlerDone_ {
		if !flushed {
			c.mu.Lock()
			c.flushLocked()
			c.mu.Unlock()
		}
		return 0, nil
	}
	if short {
		// Fewer bytes than declared: the response cannot end well. What
		// was written goes out, then RST_STREAM, as net/http's HTTP/1
		// server closes the connection.
		if len(p) > 0 {
			if err := c.writeData(st, p, false, false); err != nil {
				return 0, err
			}
		}
		c.mu.Lock()
		c.resetLocked(st.id, http2.ErrCodeInternal)
		c.flushLocked()
		c.mu.Unlock()
		return len(p), nil
	}
	hasTrailers := rw.hasNonemptyTrailers()
	endStream := rw.handlerDone_ && !hasTrailers
	if len(p) > 0 || endStream {
		if err := c.writeData(st, p, endStream, !(rw.handlerDone_ && hasTrailers)); err != nil {
			return 0, err
		}
	}
	if rw.handlerDone_ && hasTrailers {
		if err := c.writeHeaders(st, &resHeaders{h: rw.handlerHdr, keys: rw.trailers, endStream: true}, true); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

func (rw *responseWriter) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return
	}
	if !slices.Contains(rw.trailers, k) {
		rw.trailers = append(rw.trailers, k)
	}
}

// promoteUndeclaredTrailers makes "Trailer:"-prefixed header fields
// trailers (net/http's convention), once the handler has returned.
func (rw *responseWriter) promoteUndeclaredTrailers() {
	for k, vv := range rw.handlerHdr {
		if !strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		tk := strings.TrimPrefix(k, http.TrailerPrefix)
		rw.declareTrailer(tk)
		rw.handlerHdr[http.CanonicalHeaderKey(tk)] = vv
	}
	if len(rw.trailers) > 1 {
		slices.Sort(rw.trailers)
	}
}

func (rw *responseWriter) hasNonemptyTrailers() bool {
	for _, k := range rw.trailers {
		if len(rw.handlerHdr[k]) > 0 {
			return true
		}
	}
	return false
}
