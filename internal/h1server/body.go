package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"sync"
)

// maxPostHandlerReadBytes is net/http's: how much of a request body a
// handler left unread the server reads and discards to keep the
// connection; with more left, it answers "Connection: close" instead.
const maxPostHandlerReadBytes = 256 << 10

// errTrailerEOF is net/http's error for a stream that ends in a chunked
// body's trailer (the same text; the variable is unexported there).
var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

// body is a taken request's Body: a port of net/http's (transfer.go body,
// as its server makes it: doEarlyClose set, onHitEOF the start of the
// watch for the client leaving). It reads the connection's reader: a
// Content-Length body through an io.LimitedReader, a chunked one through
// httputil.NewChunkedReader, which is net/http's own chunked reader, and
// its trailer with textproto into Request.Trailer, as net/http does. So
// the handler reads the same bytes and meets the same errors (a cut body
// is io.ErrUnexpectedEOF, a malformed chunk the chunked reader's or the
// guard's error, a Read after Close http.ErrBodyReadAfterClose).
//
// It lives in the request's response (no allocation for a Content-Length
// body). Read and Close may be called from any goroutine, one at a time
// (mu); the connection's reader is read only under mu while the handler
// runs, and by the connection's goroutine once Close has returned.
type body struct {
	c   *conn
	lr  io.LimitedReader // a Content-Length body: src is &lr
	src io.Reader
	// req, for a chunked body, is the request whose Trailer the trailer
	// goes into (net/http's body.hdr); nil once read, or for a
	// Content-Length body.
	req     *http.Request
	chunked bool
	closing bool // the client asked to close after this request
	// (Fields ordered for no padding: the response must fit its size
	// class, TestResponseFitsItsSizeClass.)

	mu         sync.Mutex // guards the following, and calls to Read and Close
	sawEOF     bool
	closed     bool
	earlyClose bool // Close gave up with more than maxPostHandlerReadBytes left
}

// init sets b up for req, just parsed, whose ContentLength is not 0.
func (b *body) init(c *conn, req *http.Request) {
	b.c, b.closing = c, req.Close
	if req.ContentLength < 0 {
		b.chunked = true
		b.src = httputil.NewChunkedReader(c.br)
		b.req = req
		return
	}
	b.lr = io.LimitedReader{R: c.br, N: req.ContentLength}
	b.src = &b.lr
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

// readLocked is net/http's body.readLocked; b.mu is held.
func (b *body) readLocked(p []byte) (n int, err error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	n, err = b.src.Read(p)
	if err == io.EOF {
		b.sawEOF = true
		if b.req != nil { // chunked: the trailer
			if e := b.readTrailer(); e != nil {
				// Nothing more may be read from the body, nor any request
				// after it (Go issue 12027).
				err = e
				b.sawEOF = false
				b.closed = true
			}
			b.req = nil
		} else if !b.chunked && b.lr.N > 0 {
			err = io.ErrUnexpectedEOF // the stream ended before Content-Length
		}
	}
	// The last bytes of a Content-Length body come with io.EOF.
	if err == nil && n > 0 && !b.chunked && b.lr.N == 0 {
		err = io.EOF
		b.sawEOF = true
	}
	if b.sawEOF {
		b.c.bodyDone()
	}
	return n, err
}

// readTrailer is net/http's body.readTrailer.
func (b *body) readTrailer() error {
	br := b.c.br
	buf, err := br.Peek(2)
	if bytes.Equal(buf, crlf) {
		_, _ = br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	// The trailer is bounded by the reader's buffer, as net/http's
	// (4 KiB both).
	if !seeUpcomingDoubleCRLF(br) {
		return errors.New("http: suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	if b.req.Trailer == nil {
		b.req.Trailer = http.Header(hdr)
	} else {
		maps.Copy(b.req.Trailer, http.Header(hdr))
	}
	return nil
}

func seeUpcomingDoubleCRLF(r *bufio.Reader) bool {
	for peekSize := 4; ; peekSize++ {
		// Peek fails once the reader's buffer is full.
		buf, err := r.Peek(peekSize)
		if bytes.HasSuffix(buf, doubleCRLF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

var doubleCRLF = []byte("\r\n\r\n")

// unreadLocked is the number of bytes left, -1 if unknown (chunked).
func (b *body) unreadLocked() int64 {
	if b.chunked {
		return -1
	}
	return b.lr.N
}

// Close is net/http's body.Close with doEarlyClose: the rest of the body
// is read and discarded, up to maxPostHandlerReadBytes, so that the
// connection may serve another request.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	var err error
	switch {
	case b.sawEOF:
	case b.req == nil && b.closing:
		// No trailer to read, and the connection closes next.
	case !b.chunked && b.lr.N > maxPostHandlerReadBytes:
		b.earlyClose = true
	default:
		var n int64
		n, err = io.CopyN(io.Discard, bodyLocked{b}, maxPostHandlerReadBytes)
		if err == io.EOF {
			err = nil
		}
		if n == maxPostHandlerReadBytes {
			b.earlyClose = true
		}
	}
	b.closed = true
	return err
}

// readToEnd reports whether the body was read to its end: then the
// connection's next bytes are the next request's.
func (b *body) readToEnd() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sawEOF
}

func (b *body) didEarlyClose() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.earlyClose
}

// settled reports whether the body is closed or read to its end: then
// nothing more is read from the connection for it.
func (b *body) settled() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sawEOF || b.closed
}

// bodyLocked reads b with b.mu held.
type bodyLocked struct{ b *body }

func (bl bodyLocked) Read(p []byte) (int, error) {
	if bl.b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return bl.b.readLocked(p)
}
