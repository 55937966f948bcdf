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
	snapHdr      http.Header
	maps         [2]*headerMap // what handlerHdr and snapHdr came from, returned at release
	status       int
	wroteHeader  bool
	sentHeader   bool
	handlerDone_ bool
	declCL       int64 // Content-Length declared at WriteHeader, -1 if none
	wroteBytes   int64
	trailers     []string
}

var bufWriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, handlerChunk) }}

// headerMap is a response header map kept between responses, with the
// array that holds the values of a copy (the snapshot at WriteHeader).
// A response's two maps were three allocations and two rounds of map
// growth each time (a proxied response has more than the eight fields a
// small map holds). They go back to headerPool once the handler has
// returned and its response is written: a handler may not use its
// ResponseWriter, nor so its header map, after it returns (net/http's
// contract; h1server keeps a connection's map on the same terms).
type headerMap struct {
	h    http.Header
	vals []string
}

// maxPooledFields: a map that held more than this is let go rather than
// kept at its size.
const maxPooledFields = 32

var headerPool = sync.Pool{New: func() any { return &headerMap{h: make(http.Header, 16)} }}

// copyOf makes m a deep copy of src, as http.Header.Clone does (nil
// values stay nil), in m's own map and array.
func (m *headerMap) copyOf(src http.Header) http.Header {
	n := 0
	for _, vv := range src {
		n += len(vv)
	}
	if cap(m.vals) < n {
		m.vals = make([]string, n)
	}
	vals := m.vals[:n]
	for k, vv := range src {
		if vv == nil {
			m.h[k] = nil
			continue
		}
		c := copy(vals, vv)
		m.h[k] = vals[:c:c]
		vals = vals[c:]
	}
	return m.h
}

// release returns the response's header maps to headerPool; the
// handler has returned and nothing of the response is left to write.
func (rw *responseWriter) release() {
	for i, m := range rw.maps {
		if m == nil {
			continue
		}
		rw.maps[i] = nil
		if len(m.h) > maxPooledFields || cap(m.vals) > 4*maxPooledFields {
			continue
		}
		clear(m.h)
		clear(m.vals)
		headerPool.Put(m)
	}
	rw.handlerHdr, rw.snapHdr = nil, nil
}

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
		rw.maps[0] = headerPool.Get().(*headerMap)
		rw.handlerHdr = rw.maps[0].h
	}
	return rw.handlerHdr
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
		rw.maps[1] = headerPool.Get().(*headerMap)
		rw.snapHdr = rw.maps[1].copyOf(rw.handlerHdr)
		if v := rw.snapHdr["Content-Length"]; len(v) > 0 {
			if cl, err := strconv.ParseUint(v[0], 10, 63); err == nil {
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
	if !t.IsZero() && !t.After(time.Now()) {
		c.resetLocked(rw.st.id, http2.ErrCodeInternal)
		c.kickLocked()
	}
	c.cond.Broadcast()
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
		var ctype, clen string
		if clen = rw.snapHdr.Get("Content-Length"); clen != "" {
			rw.snapHdr.Del("Content-Length")
			if _, err := strconv.ParseUint(clen, 10, 63); err != nil {
				clen = ""
			}
		}
		_, hasCL := rw.snapHdr["Content-Length"]
		if !hasCL && clen == "" && rw.handlerDone_ && bodyAllowedForStatus(rw.status) && (len(p) > 0 || !isHead) {
			clen = strconv.Itoa(len(p))
		}
		_, hasCT := rw.snapHdr["Content-Type"]
		if rw.snapHdr.Get("Content-Encoding") == "" && !hasCT && bodyAllowedForStatus(rw.status) && len(p) > 0 {
			ctype = http.DetectContentType(p)
		}
		var date string
		if _, ok := rw.snapHdr["Date"]; !ok {
			date = c.srv.httpDate()
		}
		for _, v := range rw.snapHdr["Trailer"] {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					rw.declareTrailer(k)
				}
			}
		}
		// "Connection: close" asks, as in HTTP/1, for the connection
		// to end: GOAWAY, then close once idle.
		if _, ok := rw.snapHdr["Connection"]; ok {
			v := rw.snapHdr.Get("Connection")
			delete(rw.snapHdr, "Connection")
			if v == "close" {
				c.mu.Lock()
				c.goAwayLocked(http2.ErrCodeNo)
				c.mu.Unlock()
			}
		}
		endStream := (rw.handlerDone_ && len(rw.trailers) == 0 && len(p) == 0 && !short) || isHead
		more := !endStream && !isHead && (len(p) > 0 || rw.handlerDone_)
		if err := c.writeHeaders(st, &resHeaders{
			status: rw.status, h: rw.snapHdr, endStream: endStream,
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
